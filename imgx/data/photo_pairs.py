"""``photo-pairs``: paired crops of the embedded photos with exact targets, for ``translate`` (and ``colorize``).

Each pair is ``(input, photo)`` where the input is a known function of the photo crop:

- ``edges``: Canny edges (``skimage.feature.canny``, sigma 1) of the gray crop, black lines on white, 1 channel
  (the classic edges2photo);
- ``gray``: the ITU-R 601 luma of the crop, 1 channel (the colorizer's input: pix2pix and the encoder-decoder
  can be compared on the same crops);
- ``blur``: the crop blurred by a Gaussian of sigma 1.5 pixels, 3 channels (blurred -> sharp).

Test crops come from photos that never appear in training, as in :mod:`imgx.data.photos`. The crops are drawn
with a seed fixed by the data options, not the case seed, so every case on the same ``data:`` (a pix2pix case
and a colorizer case, or the points of a loss ablation) sees the same crops; the test crops' seed leaves out the
training size too (:func:`imgx.data.photos.held_out_rng`), so a train-size ablation keeps its test set.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imgx.data.photos import crops, held_out_rng, split_photos
from imgx.errors import DataError

DEFAULT_SIZE = 32


def gray_of(rgb: np.ndarray) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 → ``(N, H, W, 1)`` uint8 luma, the same weights as :func:`imgx.imageio.rgb_to_gray`."""
    y = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.round(y), 0, 255).astype(np.uint8)[..., None]


def edges(rgb: np.ndarray) -> np.ndarray:
    """Canny edges of each crop as ``(N, H, W, 1)`` uint8: 0 on an edge, 255 elsewhere."""
    from skimage.feature import canny

    gray = gray_of(rgb)[..., 0].astype(np.float64) / 255.0
    out = np.full(gray.shape, 255, np.uint8)
    for i, g in enumerate(gray):
        out[i][canny(g, sigma=1.0)] = 0
    return out[..., None]


def gray(rgb: np.ndarray) -> np.ndarray:
    """Luma of each crop, ``(N, H, W, 1)`` uint8."""
    return gray_of(rgb)


def blur(rgb: np.ndarray) -> np.ndarray:
    """Each crop blurred by a Gaussian of sigma 1.5 pixels (reflected borders), ``(N, H, W, 3)`` uint8."""
    from scipy.ndimage import gaussian_filter

    out = gaussian_filter(rgb.astype(np.float64), sigma=(0, 1.5, 1.5, 0), mode="reflect")
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def data_seed(spec, *parts: Any) -> int:
    """The seed crops are drawn with: a function of the data options only, shared by every case on them."""
    from imgx.suite.expand import stable_seed

    return stable_seed(spec.name, spec.image_size, spec.train, spec.test, spec.photos, spec.test_photos, *parts)


def load(spec, seed: int, task: str) -> dict[str, Any]:
    """Paired crops (see the module docstring and the data loader contract in :mod:`imgx.data`).

    Returns for ``translate``: ``train_a``, ``train_b``, ``test_a``, ``test_b`` (``(N, C, S, S)`` in ``[-1, 1]``;
    ``test_b`` is the exact target of ``test_a``) and ``paired=True``; for ``colorize`` (``pair: gray`` only)
    the colour crops as ``train`` and ``test``.
    """
    from imgx.data import PAIRS
    from imgx.imageio import array_to_tensor

    if not spec.pair:
        raise DataError(f"data set {spec.name!r} needs a pair ({', '.join(PAIRS)})")
    make = PAIRS.get(spec.pair)
    size = spec.image_size or DEFAULT_SIZE
    train_names, test_names = split_photos(spec)
    rng = np.random.default_rng(data_seed(spec))
    train = crops(train_names, spec.train or 4096, size, rng)
    n_test = spec.test or 512
    test = crops(test_names, n_test, size, held_out_rng(spec, size, n_test, test_names))
    info = {"source": "scikit-image", "pair": spec.pair, "train_photos": train_names, "test_photos": test_names,
            "image_size": size, "train": len(train), "test": len(test), "crop_seed": "fixed by the data options"}
    if task == "colorize":
        if spec.pair != "gray":
            raise DataError(f"colorize reads photo-pairs only with pair: gray, not {spec.pair!r}")
        return {"train": array_to_tensor(train), "test": array_to_tensor(test), "info": info}
    return {"train_a": array_to_tensor(make(train)), "train_b": array_to_tensor(train),
            "test_a": array_to_tensor(make(test)), "test_b": array_to_tensor(test), "paired": True, "info": info}
