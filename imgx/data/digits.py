"""``digits``: the 1,797 handwritten digits that ship inside scikit-learn (8x8, 17 grey levels), upscaled.

No download, so the GAN quickstart and the ``digits-classifier`` feature extractor work offline. For
``text-to-image`` every image has a caption, ``"a handwritten digit N"`` (:func:`caption`). The
train/test split is a property of the data, not of the case: it is stratified by class and drawn with a
fixed seed, so every case (and the cached digits classifier) sees the same held-out test images.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imgx.errors import DataError

SPLIT_SEED = 0  # fixed: the test split must not move with the case seed
TEST_FRACTION = 0.2
DEFAULT_SIZE = 28
CAPTION = "a handwritten digit {}"


def caption(label: int) -> str:
    """The caption of a digit of class ``label``: ``"a handwritten digit 7"``."""
    return CAPTION.format(int(label))


def upscale(images8: np.ndarray, size: int):
    """``(N, 8, 8)`` values 0..16 → ``(N, 1, size, size)`` float32 tensor in ``[-1, 1]`` (bilinear)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.asarray(images8, dtype=np.float32) / 16.0).unsqueeze(1)
    if size != x.shape[-1]:
        # Upsampling only (size >= 8 is enforced by the schema), so antialiasing has nothing to do.
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.clamp_(0.0, 1.0).mul_(2.0).sub_(1.0)


def split_indices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A stratified, fixed-seed train/test split of indices (each class split 80/20, shuffled)."""
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(len(idx) * TEST_FRACTION))
        test.append(idx[:k])
        train.append(idx[k:])
    train_idx, test_idx = np.concatenate(train), np.concatenate(test)
    return rng.permutation(train_idx), rng.permutation(test_idx)


def load(spec, seed: int, task: str) -> dict[str, Any]:
    """Load the embedded digits for ``generate`` or ``text-to-image`` (data loader contract in :mod:`imgx.data`).

    Returns:
        ``{"train": (N, 1, S, S), "test": (M, 1, S, S)}`` in ``[-1, 1]`` with ``train_labels``/``test_labels``
        (LongTensor) and ``info``; for ``text-to-image`` also ``train_captions``/``test_captions`` (lists of
        :func:`caption`). ``spec.train``/``spec.test`` take the first N of each split.
    """
    import torch
    from sklearn.datasets import load_digits

    if task not in ("generate", "text-to-image"):
        raise DataError(f"digits: feeds the generate and text-to-image tasks only, not {task!r}")
    bunch = load_digits()
    images, labels = np.asarray(bunch.images), np.asarray(bunch.target, dtype=np.int64)
    train_idx, test_idx = split_indices(labels)
    size = spec.image_size or DEFAULT_SIZE
    for name, want, have in (("train", spec.train, len(train_idx)), ("test", spec.test, len(test_idx))):
        if want is not None and want > have:
            raise DataError(f"digits: data.{name} = {want} but the {name} split has only {have} images "
                            f"(1797 digits, {int(TEST_FRACTION * 100)}% held out for test)")
    train_idx = train_idx[:spec.train] if spec.train else train_idx
    test_idx = test_idx[:spec.test] if spec.test else test_idx
    out = {
        "train": upscale(images[train_idx], size),
        "test": upscale(images[test_idx], size),
        "train_labels": torch.from_numpy(labels[train_idx]),
        "test_labels": torch.from_numpy(labels[test_idx]),
        "info": {"source": "sklearn.datasets.load_digits", "native_size": 8, "image_size": size,
                 "resize": f"bilinear 8x8 -> {size}x{size}", "split_seed": SPLIT_SEED,
                 "train": int(len(train_idx)), "test": int(len(test_idx)), "classes": 10},
    }
    if task == "text-to-image":
        out["train_captions"] = [caption(c) for c in labels[train_idx]]
        out["test_captions"] = [caption(c) for c in labels[test_idx]]
        out["info"]["captions"] = CAPTION.format("N")
    return out
