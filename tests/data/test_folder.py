"""User images: every kind of bad file is refused by name; odd-but-valid modes are converted, not refused."""

import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from imgx.data.folder import list_images, load, load_edit_csv
from imgx.errors import DataError
from imgx.imageio import open_rgb
from imgx.suite.schema import DataSpec
from tests.helpers import write_suite


def _png_header_only(path, width, height):
    """A PNG whose header claims width x height pixels (a decompression-bomb shape) with no real data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "ok.png"
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(path)
    return path


BAD_FILES = {
    "zero-byte": lambda p, ok: p.write_bytes(b""),
    "truncated": lambda p, ok: p.write_bytes(ok.read_bytes()[:60]),
    "corrupt": lambda p, ok: p.write_bytes(ok.read_bytes()[:40] + b"\x00garbage" * 50),
    "text-with-png-suffix": lambda p, ok: p.write_text("this is not an image"),
    "bomb": lambda p, ok: _png_header_only(p, 9000, 9000),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_image_files_are_refused_by_name(tmp_path, photo, kind):
    bad = tmp_path / f"{kind}.png"
    BAD_FILES[kind](bad, photo)
    with pytest.raises(DataError) as info:
        open_rgb(bad)
    assert str(bad) in str(info.value)
    if kind == "bomb":
        assert "decompression bomb" in str(info.value)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "LA", "1"])
def test_unusual_modes_are_converted_to_rgb(tmp_path, mode):
    rng = np.random.default_rng(1)
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (20, 20), dtype=np.uint16))
    else:
        img = Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).convert(mode)
    path = tmp_path / "x.png"
    img.save(path)
    out = open_rgb(path)
    assert out.mode == "RGB" and out.size == (20, 20)
    if mode == "I;16":  # 16-bit is scaled to 8 bits, not clipped to white
        assert 60 < np.asarray(out).mean() < 200


def test_folder_problems_are_named(tmp_path, photo):
    with pytest.raises(DataError, match="no such folder"):
        list_images(tmp_path / "missing")
    with pytest.raises(DataError, match="not a folder"):
        list_images(photo)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="no images"):
        list_images(tmp_path / "empty")


def test_folder_feeds_every_task(tmp_path):
    rng = np.random.default_rng(2)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(tmp_path / f"im{i}.png")
    spec = DataSpec(name="folder", path=str(tmp_path), image_size=16, train=40, test=8, count=3)
    col = load(spec, 0, "colorize")
    assert col["train"].shape == (40, 3, 16, 16) and col["test"].shape == (8, 3, 16, 16)
    gen = load(spec, 0, "generate")
    assert gen["train"].shape[1:] == (1, 16, 16) and len(gen["train"]) + len(gen["test"]) == 5
    edit = load(spec, 0, "edit")
    assert len(edit["images"]) == 3 and edit["images"][0].size == (16, 16)


def test_edit_csv(tmp_path, photo):
    (tmp_path / "rows.csv").write_text("image,instruction,output_caption\nok.png,make it <b>snow</b>,a snowy scene\n")
    data = load_edit_csv(DataSpec(name="edit-csv", path=str(tmp_path / "rows.csv"), image_size=32), 0, "edit")
    assert data["instructions"] == ["make it <b>snow</b>"] and data["output_captions"] == ["a snowy scene"]
    assert data["input_captions"] == [None]
    (tmp_path / "bad.csv").write_text("picture,prompt\nok.png,x\n")
    with pytest.raises(DataError, match="missing column"):
        load_edit_csv(DataSpec(name="edit-csv", path=str(tmp_path / "bad.csv")), 0, "edit")


def test_corrupt_image_in_a_suite_exits_2_naming_the_file(tmp_path, photo):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        (images / f"{i}.png").write_bytes(photo.read_bytes())
    (images / "broken.png").write_bytes(photo.read_bytes()[:50])
    suite = write_suite(tmp_path, f"""
        suite: mine
        cases:
          - id: c
            task: colorize
            model: {{name: encoder-decoder}}
            data: {{name: folder, path: "{images}", image_size: 16, train: 32, test: 8}}
            train: {{epochs: 1}}
            metrics: [mse]
        """)
    proc = subprocess.run([sys.executable, "-m", "imgx", "run", str(suite), "--out", str(tmp_path / "out"), "-q"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{images / 'broken.png'}: not a readable image" in proc.stderr
