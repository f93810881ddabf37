"""photo-edits: held-out crops x instructions with exact targets; edit-csv targets; bad input named (exit 2)."""

import numpy as np
import pytest
from PIL import Image

from imgx.cli import main
from imgx.data.folder import load_edit_csv
from imgx.data.photo_edits import DEFAULT_EDITS, EDITS, load
from imgx.errors import DataError
from imgx.suite.schema import DataSpec
from tests.helpers import write_suite


@pytest.fixture(scope="module")
def data():
    return load(DataSpec(name="photo-edits", image_size=16, train=64, test=3), 0, "edit")


def test_rows_are_every_held_out_crop_with_every_instruction(data):
    assert len(DEFAULT_EDITS) >= 8 and any(EDITS[k].spatial for k in DEFAULT_EDITS)
    n = 3 * len(DEFAULT_EDITS)
    assert all(len(data[k]) == n for k in ("images", "names", "paths", "instructions", "input_captions",
                                           "output_captions", "targets"))
    assert {name.split("-")[0] for name in data["names"]} <= {"chelsea", "coffee"}  # held-out photos only
    assert not {"chelsea", "coffee"} & set(data["info"]["train_photos"])
    assert data["instructions"][:len(DEFAULT_EDITS)] == [EDITS[k].instruction for k in DEFAULT_EDITS]
    assert data["output_captions"][0] == "a grayscale photo of " + data["input_captions"][0][len("a photo of "):]
    assert data["images"][0].size == (16, 16) and data["targets"][0].size == (16, 16)


def test_targets_are_exact(data):
    by = {ins: (np.asarray(i).astype(int), np.asarray(t).astype(int))
          for i, t, ins in zip(data["images"], data["targets"], data["instructions"], strict=True)}
    x, t = by["invert the colors"]
    assert (t == 255 - x).all()
    x, t = by["flip it horizontally"]
    assert (t == x[:, ::-1]).all()
    x, t = by["make it grayscale"]
    assert (t[..., 0] == t[..., 1]).all() and (t[..., 1] == t[..., 2]).all()
    x, t = by["make it darker"]
    assert np.abs(t - x / 2).max() <= 0.5


def test_every_default_target_lies_well_away_from_its_input(data):
    # A target within a small VAE's reconstruction error (~0.002-0.005 MSE at 16 px) of its input would measure
    # nothing: every default edit moves the pixels by much more.
    for key in DEFAULT_EDITS:
        pairs = [(np.asarray(i) / 255.0, np.asarray(t) / 255.0) for i, t, ins in
                 zip(data["images"], data["targets"], data["instructions"], strict=True)
                 if ins == EDITS[key].instruction]
        assert np.mean([((i - t) ** 2).mean() for i, t in pairs]) > 0.012, key


def test_training_split_and_options(data):
    train = data["train"]
    assert train["inputs"].shape == (64, 16, 16, 3) and train["targets"].shape == (64, 16, 16, 3)
    assert set(train["instructions"]) == {EDITS[k].instruction for k in DEFAULT_EDITS}
    some = load(DataSpec(name="photo-edits", train=8, test=1, instructions=["invert", "make it darker"]), 0, "edit")
    assert some["instructions"] == ["invert the colors", "make it darker"]
    with pytest.raises(DataError, match="unknown instruction 'make it snowy'"):
        load(DataSpec(name="photo-edits", train=8, test=1, instructions=["make it snowy"]), 0, "edit")
    again = load(DataSpec(name="photo-edits", image_size=16, train=64, test=3), 0, "edit")
    assert np.array_equal(np.asarray(again["targets"][5]), np.asarray(data["targets"][5]))  # deterministic


def _png(path, size, value=100):
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def test_edit_csv_target_column_is_resized_like_the_input(tmp_path):
    _png(tmp_path / "in.png", (40, 30))
    _png(tmp_path / "out.png", (80, 60), 50)
    (tmp_path / "rows.csv").write_text("image,instruction,target\nin.png,make it darker,out.png\nin.png,x,\n")
    data = load_edit_csv(DataSpec(name="edit-csv", path=str(tmp_path / "rows.csv"), image_size=16), 0, "edit")
    assert data["targets"][0].size == (16, 16) and data["targets"][1] is None
    assert np.asarray(data["targets"][0]).max() == 50
    assert data["info"]["targets_resized_from_another_size"] == 1 and "resized" in data["info"]["target_rule"]


def test_missing_target_files_are_named_by_row_and_validate_exits_2(tmp_path, capsys):
    _png(tmp_path / "in.png", (16, 16))
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("image,instruction,target\nin.png,make it darker,gone.png\nmissing.png,x,\n")
    suite = write_suite(tmp_path, f"""
        suite: s
        cases:
          - id: e
            task: edit
            model: {{name: instruct-pix2pix, weights: tiny}}
            data: {{name: edit-csv, path: '{csv_path}'}}
        """)
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err
    assert f"{csv_path}:2: target 'gone.png': no such file" in err
    assert f"{csv_path}:3: image 'missing.png': no such file" in err
    with pytest.raises(DataError, match="rows.csv:2: target 'gone.png'"):
        load_edit_csv(DataSpec(name="edit-csv", path=str(csv_path)), 0, "edit")


def test_photo_edits_needs_no_prompts_and_train_needs_weights_train(tmp_path, capsys):
    suite = write_suite(tmp_path, """
        suite: s
        cases:
          - id: ok
            task: edit
            model: {name: instruct-pix2pix, weights: train}
            data: {name: photo-edits, image_size: 16, instructions: [invert, darker]}
            train: {epochs: 2}
            sweep: {epochs: [1, 2]}
            metrics: [target_mse, instruction_accuracy]
          - id: bad
            task: edit
            model: {name: instruct-pix2pix, weights: tiny}
            data: {name: photo-edits}
            train: {epochs: 2}
        """)
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "cases[1].train: train: applies to an edit case only" in err
