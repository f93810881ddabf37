"""folder-pairs refuses two files of one side that share a name (cat.png and cat.jpg), naming both."""

import subprocess
import sys

import pytest
from PIL import Image

from imgx.data import DATASETS
from imgx.errors import DataError
from imgx.suite.schema import DataSpec
from tests.helpers import write_suite

SUITE = """suite: s
cases:
  - id: p
    task: translate
    model: {name: pix2pix}
    data: {name: folder-pairs, path: 'ROOT'}
    train: {epochs: 1, batch_size: 16, lr: 2.0e-4}
    metrics: [mse]
"""


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "pairs"
    for side, names in (("a", ["cat.png", "cat.jpg", "dog.png"]), ("b", ["cat.png", "dog.png", "dog.jpeg"])):
        (root / side).mkdir(parents=True)
        for n in names:
            Image.new("RGB", (8, 8), (10, 20, 30)).save(root / side / n)
    return root


def test_validate_exits_2_naming_both_files_of_each_ambiguous_name(tmp_path, root):
    path = write_suite(tmp_path, SUITE.replace("ROOT", str(root)))
    proc = subprocess.run([sys.executable, "-m", "imgx", "validate", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{path}:6: cases[0].data.path: {root}: a/cat.jpg and a/cat.png share the name 'cat'" in proc.stderr
    assert f"{root}: b/dog.jpeg and b/dog.png share the name 'dog'" in proc.stderr


def test_loading_refuses_the_ambiguity_too(root):
    with pytest.raises(DataError, match=r"a/cat\.jpg and a/cat\.png share the name 'cat'"):
        DATASETS.get("folder-pairs")(DataSpec(name="folder-pairs", path=str(root), image_size=8), 0, "translate")
