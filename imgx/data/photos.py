"""``photos``: the colour photographs that ship inside scikit-image, so defaults and tests need no download.

For ``colorize`` the photos become random square crops, with the test crops taken from photos that never
appear in training (a truly held-out split). The training crops are drawn with the case seed; the test crops
with :func:`held_out_rng`, a function of the data options only, so every case on the same ``data:`` is scored
on the same crops. For ``edit`` each photo is centre-cropped and resized whole.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from imgx.errors import DataError

# name -> loader inside skimage.data; all of these are bundled with the package (no pooch download).
PHOTOS: dict[str, str] = {
    "astronaut": "astronaut",
    "chelsea": "chelsea",
    "coffee": "coffee",
    "rocket": "rocket",
    "motorcycle": "stereo_motorcycle",
    "hubble": "hubble_deep_field",
    "retina": "retina",
    "ihc": "immunohistochemistry",
}
DEFAULT_TEST_PHOTOS = ("chelsea", "coffee")


def photo(name: str) -> np.ndarray:
    """The named photo as ``(H, W, 3)`` uint8."""
    from skimage import data

    if name not in PHOTOS:
        raise DataError(f"unknown photo {name!r}; available: {', '.join(PHOTOS)}")
    img = getattr(data, PHOTOS[name])()
    if isinstance(img, tuple):  # stereo_motorcycle returns (left, right, disparity)
        img = img[0]
    return np.ascontiguousarray(img[..., :3])


def _pyramid(img: np.ndarray, size: int) -> list[np.ndarray]:
    """The photo at a few scales (short side 2x, 4x, 8x the crop size, and full), so crops mix detail levels."""
    h, w = img.shape[:2]
    levels = []
    for short in (2 * size, 4 * size, 8 * size, min(h, w)):
        if short > min(h, w) or short < size:
            continue
        scale = short / min(h, w)
        pil = Image.fromarray(img).resize((max(size, round(w * scale)), max(size, round(h * scale))),
                                          Image.Resampling.LANCZOS)
        levels.append(np.asarray(pil))
    return levels or [np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.LANCZOS))]


def crops(names: list[str], count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random ``size``x``size`` crops drawn evenly from the named photos: ``(count, size, size, 3)`` uint8."""
    return crops_from_arrays([photo(n) for n in names], count, size, rng)


def crops_from_arrays(images: list[np.ndarray], count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random crops from ``(H, W, 3)`` uint8 images at several scales: ``(count, size, size, 3)``."""
    levels = [lvl for img in images for lvl in _pyramid(img, size)]
    out = np.empty((count, size, size, 3), np.uint8)
    which = rng.integers(0, len(levels), size=count)
    for i, k in enumerate(which):
        lvl = levels[k]
        y = rng.integers(0, lvl.shape[0] - size + 1)
        x = rng.integers(0, lvl.shape[1] - size + 1)
        out[i] = lvl[y:y + size, x:x + size]
    return out


def square(img: np.ndarray, size: int) -> Image.Image:
    """Centre-crop to a square and resize to ``size`` (LANCZOS)."""
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return Image.fromarray(img[top:top + s, left:left + s]).resize((size, size), Image.Resampling.LANCZOS)


def split_photos(spec) -> tuple[list[str], list[str]]:
    """``(train_names, test_names)``: the held-out test photos never appear in training."""
    test_names = list(spec.test_photos or DEFAULT_TEST_PHOTOS)
    train_names = [n for n in (spec.photos or PHOTOS) if n not in test_names]
    for n in test_names + train_names:
        if n not in PHOTOS:
            raise DataError(f"unknown photo {n!r}; available: {', '.join(PHOTOS)}")
    if not train_names:
        raise DataError(f"{spec.name}: every photo is in test_photos; nothing is left to train on")
    return train_names, test_names


def held_out_rng(spec, size: int, count: int, test_names: list[str], *parts: Any) -> np.random.Generator:
    """The generator a held-out test split is drawn with.

    A function of what defines the test split only (data set, image size, test count, test sources), never of
    the case seed, the training options or the training size: two cases on the same ``data:`` are scored on
    the same test images, and a train-size ablation keeps its test set.
    """
    from imgx.suite.expand import stable_seed

    return np.random.default_rng(stable_seed(spec.name, "held-out", size, count, *test_names, *parts))


def load(spec, seed: int, task: str) -> dict[str, Any]:
    """Load ``photos`` for a task (see the data loader contract in :mod:`imgx.data`)."""
    from imgx.imageio import array_to_tensor

    size = spec.image_size or {"colorize": 32, "text-to-image": 64}.get(task, 512)
    if task == "edit":
        names = list(spec.photos or ["astronaut", "chelsea", "coffee", "rocket"])
        unknown = [n for n in names if n not in PHOTOS]
        if unknown:
            raise DataError(f"unknown photo(s) {unknown}; available: {', '.join(PHOTOS)}")
        count = spec.count or len(names)
        picked = [names[i % len(names)] for i in range(count)]
        return {"images": [square(photo(n), size) for n in picked], "names": picked,
                "paths": [f"skimage.data:{n}" for n in picked], "instructions": [None] * count,
                "input_captions": [None] * count, "output_captions": [None] * count, "targets": [None] * count,
                "info": {"source": "scikit-image", "photos": picked, "image_size": size}}
    train_names, test_names = split_photos(spec)
    rng = np.random.default_rng(seed)
    # text-to-image only needs reference images (FID/KID), so fewer by default than the colorizer trains on
    n_train, n_test = (8192, 1024) if task == "colorize" else (256, 256)
    n_test = spec.test or n_test
    train = crops(train_names, spec.train or n_train, size, rng)
    test = crops(test_names, n_test, size, held_out_rng(spec, size, n_test, test_names))
    return {"train": array_to_tensor(train), "test": array_to_tensor(test),
            "info": {"source": "scikit-image", "train_photos": train_names, "test_photos": test_names,
                     "image_size": size, "train": len(train), "test": len(test),
                     "test_seed": "fixed by the data options"}}
