"""The held-out test split depends on the data spec alone: not on the case seed, not on the training size."""

import numpy as np
import pytest
import torch
from PIL import Image

from imgx.data import DATASETS
from imgx.suite.schema import DataSpec


def _same(x, y) -> bool:
    if isinstance(x, torch.Tensor):
        return torch.equal(x, y)
    return len(x) == len(y) and all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(x, y, strict=True))


def _images(folder, n, size=(20, 24)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        value = np.random.default_rng(i).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(value).save(folder / f"img{i:02d}.png")


CROPS = [  # (data spec, task, key of the test images)
    ({"name": "photos", "image_size": 8, "test": 6}, "colorize", "test"),
    ({"name": "photo-edits", "image_size": 8, "test": 3, "instructions": ["invert"]}, "edit", "images"),
    ({"name": "photo-pairs", "pair": "gray", "image_size": 8, "test": 6}, "translate", "test_b"),
    ({"name": "photo-styles", "style": "sepia", "image_size": 8, "test": 6}, "translate", "test_a"),
]


@pytest.mark.parametrize(("options", "task", "key"), CROPS, ids=[c[0]["name"] for c in CROPS])
def test_embedded_test_crops_ignore_the_case_seed_and_the_train_size(options, task, key):
    load = DATASETS.get(options["name"])
    base = load(DataSpec(**options, train=8), 0, task)
    assert _same(base[key], load(DataSpec(**options, train=8), 1234, task)[key])  # another case seed
    assert _same(base[key], load(DataSpec(**options, train=16), 0, task)[key])  # a train-size ablation
    other = load(DataSpec(**{**options, "test": options["test"] + 1}, train=8), 0, task)[key]
    assert not _same(base[key], other[: len(base[key])])  # the test options still choose the test crops


def test_photos_training_crops_still_follow_the_case_seed():
    load = DATASETS.get("photos")
    spec = DataSpec(name="photos", image_size=8, train=8, test=4)
    assert not torch.equal(load(spec, 0, "colorize")["train"], load(spec, 1, "colorize")["train"])


@pytest.mark.parametrize("task", ["colorize", "generate"])
def test_folder_test_split_ignores_the_case_seed_and_the_train_size(tmp_path, task):
    _images(tmp_path / "imgs", 10)
    load = DATASETS.get("folder")
    spec = DataSpec(name="folder", path=str(tmp_path / "imgs"), image_size=8, train=4, test=3)
    base = load(spec, 0, task)["test"]
    for seed in (1, 2, 3, 99):
        assert torch.equal(base, load(spec, seed, task)["test"]), seed
    assert torch.equal(base, load(spec.model_copy(update={"train": 6}), 0, task)["test"])


def test_folder_pairs_test_split_ignores_the_case_seed(tmp_path):
    _images(tmp_path / "pairs" / "a", 10)
    _images(tmp_path / "pairs" / "b", 10)
    load = DATASETS.get("folder-pairs")
    spec = DataSpec(name="folder-pairs", path=str(tmp_path / "pairs"), image_size=8)
    base = load(spec, 0, "translate")
    assert base["info"]["test_pairs"] == 2
    for seed in (1, 2, 3, 99):
        assert torch.equal(base["test_a"], load(spec, seed, "translate")["test_a"]), seed
    assert torch.equal(base["test_a"], load(spec.model_copy(update={"train": 3}), 0, "translate")["test_a"])
