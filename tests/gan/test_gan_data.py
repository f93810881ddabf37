"""Data for the generate task: the embedded digits, MNIST and CIFAR-10 through torchvision."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from imgx.data.digits import load, split_indices
from imgx.data.tv import load_cifar10, load_mnist
from imgx.errors import DataError
from tests.gan.conftest import digits_spec


def test_digits_shapes_ranges_and_labels(digits):
    assert digits["train"].shape == (1438, 1, 28, 28) and digits["test"].shape == (359, 1, 28, 28)
    assert digits["train"].dtype == torch.float32
    assert digits["train"].min() == -1 and digits["train"].max() == 1
    assert digits["train_labels"].dtype == torch.long and set(digits["test_labels"].tolist()) == set(range(10))
    assert digits["info"]["train"] == 1438


def test_digits_split_is_disjoint_stratified_and_fixed():
    from sklearn.datasets import load_digits

    labels = load_digits().target
    train, test = split_indices(labels)
    assert len(set(train) & set(test)) == 0 and len(train) + len(test) == len(labels)
    for c in range(10):  # every class is held out in proportion
        assert abs((labels[test] == c).sum() / (labels == c).sum() - 0.2) < 0.01
    a, b = load(digits_spec(test=50), 1, "generate"), load(digits_spec(test=50), 2, "generate")
    assert torch.equal(a["test"], b["test"])  # the case seed does not move the test split


def test_digits_sizes_and_refusals():
    small = load(digits_spec(image_size=16, train=100, test=20), 0, "generate")
    assert small["train"].shape == (100, 1, 16, 16) and small["test"].shape == (20, 1, 16, 16)
    with pytest.raises(DataError, match="only 1438"):
        load(digits_spec(train=5000), 0, "generate")
    with pytest.raises(DataError, match="generate and text-to-image tasks only"):
        load(digits_spec(), 0, "colorize")


def _idx(path, array: np.ndarray) -> None:
    """Write an IDX file (MNIST's format): magic with dtype ubyte and the number of dimensions, sizes, data."""
    header = struct.pack(">I", 0x0800 | array.ndim) + b"".join(struct.pack(">I", s) for s in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_reads_a_local_root(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    _idx(raw / "train-images-idx3-ubyte", rng.integers(0, 256, (12, 28, 28)))
    _idx(raw / "train-labels-idx1-ubyte", np.arange(12) % 10)
    _idx(raw / "t10k-images-idx3-ubyte", np.full((6, 28, 28), 255))
    _idx(raw / "t10k-labels-idx1-ubyte", np.arange(6))
    data = load_mnist(digits_spec(name="mnist", root=str(tmp_path), train=10), 0, "generate")
    assert data["train"].shape == (10, 1, 28, 28) and data["test"].shape == (6, 1, 28, 28)
    assert torch.equal(data["train_labels"], torch.arange(10) % 10)
    assert (data["test"] == 1).all() and data["train"].min() >= -1
    with pytest.raises(DataError, match="only 12"):
        load_mnist(digits_spec(name="mnist", root=str(tmp_path), train=13), 0, "generate")


def test_missing_torchvision_data_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError, match=r"download is off.*MNIST/raw") as info:
        load_mnist(digits_spec(name="mnist", root=str(tmp_path)), 0, "generate")
    assert str(tmp_path) in str(info.value)
    with pytest.raises(DataError, match=r"cifar-10-batches-py"):
        load_cifar10(digits_spec(name="cifar10", root=str(tmp_path)), 0, "colorize")
    with pytest.raises(DataError, match="colorize task only"):
        load_cifar10(digits_spec(name="cifar10", root=str(tmp_path)), 0, "generate")
