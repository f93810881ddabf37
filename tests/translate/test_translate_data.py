"""photo-pairs, photo-styles and folder-pairs: exact pairs, held-out test photos, the hidden truth, name pairing."""

import numpy as np
import pytest
import torch
from PIL import Image

from imgx.data import DATASETS, PAIRS, STYLES
from imgx.errors import DataError
from imgx.imageio import array_to_tensor, rgb_to_gray, tensor_to_array
from imgx.suite.schema import DataSpec


def _pairs(pair: str, **kw):
    spec = DataSpec(name="photo-pairs", pair=pair, image_size=32, train=24, test=8, **kw)
    return spec, DATASETS.get("photo-pairs")(spec, 0, "translate")


def test_gray_pairs_are_the_luma_of_their_targets_and_colorize_sees_the_same_crops():
    spec, d = _pairs("gray")
    assert d["paired"] and d["train_a"].shape == (24, 1, 32, 32) and d["test_b"].shape == (8, 3, 32, 32)
    assert (d["train_a"] - rgb_to_gray(d["train_b"])).abs().max() <= 1.0 / 127.5 + 1e-6  # uint8 rounding only
    assert set(d["info"]["test_photos"]).isdisjoint(d["info"]["train_photos"])
    colour = DATASETS.get("photo-pairs")(spec, 12345, "colorize")  # another case seed: the same crops
    assert torch.equal(colour["train"], d["train_b"]) and torch.equal(colour["test"], d["test_b"])


def test_edges_are_canny_black_on_white_and_blur_is_a_blur():
    _, d = _pairs("edges")
    values = set(d["train_a"].unique().tolist())
    assert values == {-1.0, 1.0}  # binary: edges and background
    assert 0.01 < (d["train_a"] < 0).float().mean() < 0.5
    _, b = _pairs("blur")
    sharp, soft = b["train_b"], b["train_a"]
    tv = lambda x: (x[..., 1:, :] - x[..., :-1, :]).abs().mean()  # noqa: E731 - total variation
    assert tv(soft) < 0.7 * tv(sharp)


@pytest.mark.parametrize("style", ["sepia", "sketch", "winter"])
def test_styles_have_a_hidden_truth_and_domains_come_from_different_photos(style):
    spec = DataSpec(name="photo-styles", style=style, image_size=32, train=16, test=8)
    d = DATASETS.get("photo-styles")(spec, 0, "translate")
    info = d["info"]
    assert not d["paired"] and set(info["photos_a"]).isdisjoint(info["photos_b"])
    assert set(info["test_photos"]).isdisjoint(info["photos_a"] + info["photos_b"])
    truth = STYLES.get(style)(tensor_to_array(d["test_a"]))
    assert torch.equal(array_to_tensor(truth), d["test_b_true"])
    assert not torch.equal(d["test_b_true"], d["test_a"])
    back = DATASETS.get("photo-styles")(spec.model_copy(update={"direction": "ba"}), 0, "translate")
    assert torch.equal(back["test_b_true"], d["test_a"]) and torch.equal(back["test_a"], d["test_b_true"])


def test_sepia_is_the_classic_matrix():
    white = np.full((1, 2, 2, 3), 255, np.uint8)
    assert STYLES.get("sepia")(white)[0, 0, 0].tolist() == [255, 255, 239]  # .272+.534+.131 = .937 -> 239
    assert PAIRS.get("gray")(white)[0, 0, 0].tolist() == [255]


def test_folder_pairs_pair_by_name_and_hold_out_a_test_split(tmp_path):
    for i in range(6):
        colour = (40 * i, 10, 200 - 30 * i)
        for side, c in (("a", colour), ("b", tuple(255 - v for v in colour))):
            (tmp_path / side).mkdir(exist_ok=True)
            Image.new("RGB", (12, 12), c).save(tmp_path / side / f"p{i}.{'png' if side == 'a' else 'jpg'}")
    spec = DataSpec(name="folder-pairs", path=str(tmp_path), image_size=8)
    d = DATASETS.get("folder-pairs")(spec, 0, "translate")
    assert d["paired"] and len(d["train_a"]) + len(d["test_a"]) == 6 and len(d["test_a"]) == 2
    for a, b in ((d["train_a"], d["train_b"]), (d["test_a"], d["test_b"])):
        assert (a + b).abs().max() < 0.05  # each b is the negative of its namesake a (jpeg rounding aside)
    (tmp_path / "b" / "p0.jpg").unlink()
    with pytest.raises(DataError, match=r"1 file\(s\) in a/ have no namesake in b/: p0.png"):
        DATASETS.get("folder-pairs")(spec, 0, "translate")


def test_photo_styles_defaults_to_everyday_scenes_and_honours_photos():
    spec = DataSpec(name="photo-styles", style="sketch", image_size=32, train=8, test=4)
    info = DATASETS.get("photo-styles")(spec, 0, "translate")["info"]
    assert (info["photos_a"], info["photos_b"], info["test_photos"]) == (
        ["astronaut", "rocket"], ["coffee", "motorcycle"], ["chelsea"])
    chosen = spec.model_copy(update={"photos": ["hubble", "retina", "ihc", "coffee"], "test_photos": ["coffee"]})
    info = DATASETS.get("photo-styles")(chosen, 0, "translate")["info"]
    assert (info["photos_a"], info["photos_b"], info["test_photos"]) == (["hubble", "ihc"], ["retina"], ["coffee"])
