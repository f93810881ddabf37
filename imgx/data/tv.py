"""torchvision data sets: ``mnist`` (generate) and ``cifar10`` (colorize), from a local root or downloaded.

Nothing is downloaded unless the suite says ``download: true``. The root is ``data.root``, else
``$IMGX_DATA``, else ``~/.cache/imgx/data``; when the files are not there a :class:`~imgx.errors.DataError`
says exactly where to put them. ``train``/``test`` take the first N images of the official splits.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from imgx.errors import DataError

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
CIFAR_FOLDER = "cifar-10-batches-py"


def data_root(spec) -> Path:
    """The folder torchvision reads: ``data.root``, ``$IMGX_DATA`` or ``~/.cache/imgx/data``."""
    return Path(spec.root or os.environ.get("IMGX_DATA") or Path.home() / ".cache" / "imgx" / "data").expanduser()


def _open(cls, root: Path, train: bool, download: bool, where: str, name: str):
    try:
        return cls(str(root), train=train, download=download)
    except (RuntimeError, OSError, ValueError) as exc:
        how = ("the download failed (offline?)" if download else "download is off (set data.download: true to fetch "
               "it when online)")
        raise DataError(f"{name}: not found under {root}: {how}. Put the files at {where} "
                        f"or point data.root at the folder that holds them ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from None


def _take(n: int | None, have: int, name: str, split: str) -> int:
    if n is None:
        return have
    if n > have:
        raise DataError(f"{name}: data.{split} = {n} but the {split} split has only {have} images")
    return n


def _resize(x, size: int):
    """``(N, C, H, W)`` float → ``size``x``size`` (bilinear, antialiased when shrinking)."""
    import torch.nn.functional as F

    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < x.shape[-1]).clamp_(-1.0, 1.0)


def uint8_to_tensor(images: np.ndarray):
    """``(N, H, W)`` or ``(N, H, W, C)`` uint8 → ``(N, C, H, W)`` float32 in ``[-1, 1]``."""
    from imgx.imageio import array_to_tensor

    arr = np.asarray(images, dtype=np.uint8)
    if arr.ndim == 3:
        arr = arr[..., None]
    return array_to_tensor(arr)


def load_mnist(spec, seed: int, task: str) -> dict[str, Any]:
    """MNIST for ``generate``: ``(N, 1, S, S)`` in ``[-1, 1]`` with labels (S = ``image_size``, default 28)."""
    import torch
    from torchvision.datasets import MNIST

    if task != "generate":
        raise DataError(f"mnist: feeds the generate task only, not {task!r}")
    root = data_root(spec)
    where = f"{root / 'MNIST' / 'raw'}/{{{','.join(MNIST_FILES)}}}"
    parts = {}
    for split, train in (("train", True), ("test", False)):
        ds = _open(MNIST, root, train, spec.download, where, "mnist")
        n = _take(getattr(spec, split), len(ds.data), "mnist", split)
        parts[split] = (_resize(uint8_to_tensor(ds.data[:n].numpy()), spec.image_size or 28),
                        torch.as_tensor(ds.targets[:n]).long())
    size = parts["train"][0].shape[-1]
    return {"train": parts["train"][0], "test": parts["test"][0], "train_labels": parts["train"][1],
            "test_labels": parts["test"][1],
            "info": {"source": "torchvision.datasets.MNIST", "root": str(root), "image_size": size,
                     "train": len(parts["train"][0]), "test": len(parts["test"][0]), "classes": 10}}


def load_cifar10(spec, seed: int, task: str) -> dict[str, Any]:
    """CIFAR-10 for ``colorize``: ``(N, 3, S, S)`` in ``[-1, 1]`` (S = ``image_size``, default 32)."""
    from torchvision.datasets import CIFAR10

    if task != "colorize":
        raise DataError(f"cifar10: feeds the colorize task only, not {task!r}")
    root = data_root(spec)
    where = f"{root / CIFAR_FOLDER}/ (the extracted cifar-10-python.tar.gz: data_batch_1..5, test_batch, batches.meta)"
    out: dict[str, Any] = {}
    for split, train in (("train", True), ("test", False)):
        ds = _open(CIFAR10, root, train, spec.download, where, "cifar10")
        n = _take(getattr(spec, split), len(ds.data), "cifar10", split)
        out[split] = _resize(uint8_to_tensor(ds.data[:n]), spec.image_size or 32)
    out["info"] = {"source": "torchvision.datasets.CIFAR10", "root": str(root), "image_size": out["train"].shape[-1],
                   "train": len(out["train"]), "test": len(out["test"])}
    return out
