"""Case keys cover the content of every file a case reads; digests are cached by size, mtime and inode."""

import json
import os

import numpy as np
from PIL import Image

from imgx import filehash
from imgx.suite import expand, load_suite
from tests.helpers import write_suite


def _png(path, value: int, size=(12, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def _rewrite(path, value: int):
    """New pixels, and a modification time moved on (as a later edit would have)."""
    before = path.stat()
    _png(path, value)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 2_000_000_000))


def _key(suite_path) -> str:
    return expand(load_suite(suite_path))[0].key


def _suite(tmp_path, body: str):
    return write_suite(tmp_path, "suite: keys\nseed: 0\ncases:\n  - id: c\n" + body)


def test_reference_data_folder_content_is_in_the_key(tmp_path):
    for i in range(3):
        _png(tmp_path / "ref" / f"r{i}.png", 10 * i)
    suite = _suite(tmp_path, f"""    task: text-to-image
    model: {{name: stable-diffusion, weights: tiny}}
    data: {{name: digits, image_size: 16}}
    prompts: [a handwritten digit 3]
    reference_data: {{name: folder, path: '{tmp_path / "ref"}'}}
    metrics: [fid]
""")
    key = _key(suite)
    _rewrite(tmp_path / "ref" / "r1.png", 200)
    assert _key(suite) != key


def test_local_weights_and_metric_option_folders_are_in_the_key(tmp_path):
    for name in ("weights", "clip"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"a" * 64)
        (tmp_path / name / "config.json").write_text("{}")
    suite = _suite(tmp_path, """    task: edit
    model: {name: instruct-pix2pix, weights: ./weights}
    data: {name: photos, image_size: 32, count: 1}
    prompts: [make it blue]
    metrics: [clip_score]
    metric_options: {clip_score: {model: ./clip}}
""")
    keys = {_key(suite)}
    for name in ("weights", "clip"):
        path = tmp_path / name / "model.safetensors"
        stamp = path.stat()
        path.write_bytes(b"b" * 64)
        os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 2_000_000_000))
        keys.add(_key(suite))
    assert len(keys) == 3


def test_edit_csv_listed_images_and_targets_are_in_the_key(tmp_path):
    _png(tmp_path / "in.png", 100)
    _png(tmp_path / "out.png", 50)
    (tmp_path / "rows.csv").write_text("image,instruction,target\nin.png,make it darker,out.png\n")
    suite = _suite(tmp_path, f"""    task: edit
    model: {{name: instruct-pix2pix, weights: tiny}}
    data: {{name: edit-csv, path: '{tmp_path / "rows.csv"}', image_size: 16}}
    metrics: [ssim]
""")
    keys = [_key(suite)]
    _rewrite(tmp_path / "in.png", 101)
    keys.append(_key(suite))
    _rewrite(tmp_path / "out.png", 51)
    keys.append(_key(suite))
    assert len(set(keys)) == 3


def test_a_touched_but_unchanged_data_folder_keeps_its_key(tmp_path):
    for i in range(3):
        _png(tmp_path / "imgs" / f"i{i}.png", 30 * i)
    suite = _suite(tmp_path, f"""    task: colorize
    model: {{name: encoder-decoder}}
    data: {{name: folder, path: '{tmp_path / "imgs"}', image_size: 8}}
    metrics: [mse]
""")
    key = _key(suite)
    path = tmp_path / "imgs" / "i0.png"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 5_000_000_000))  # touched only
    assert _key(suite) == key
    _rewrite(path, 99)
    assert _key(suite) != key


def test_digests_are_cached_by_size_mtime_and_inode(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    real = filehash.file_digest(path)
    filehash.flush()
    cache = filehash._cache_path()
    entries = json.loads(cache.read_text())
    entries[str(path)][3] = "from-the-cache"
    cache.write_text(json.dumps(entries))
    filehash._cache = None  # a new process: the cache file is read again
    assert filehash.file_digest(path) == "from-the-cache"  # not re-read while size, mtime and inode hold
    stamp = path.stat()
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000_000))
    assert filehash.file_digest(path) == real  # a new mtime: hashed again
