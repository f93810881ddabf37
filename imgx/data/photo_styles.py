"""``photo-styles``: unpaired domains A (photo crops) and B (crops styled by a known function), for CycleGAN.

Domain A and domain B training crops come from *different* photos (the training photos split in two
alternately), so no training image has its counterpart in the other domain. Because the style is a known
function, the true B of every test A is known (``test_b_true``), and the true A of every test B
(``test_a_true``): ``target_mse`` / ``target_ssim`` score a translation against it. Test crops come from the
held-out photos; test A and test B are different crops of them, drawn from the data options alone (never the
case seed or the training size: :func:`imgx.data.photos.held_out_rng`).

Styles (on ``[0, 1]`` RGB):

- ``sepia``: the classic sepia matrix (rows .393 .769 .189 / .349 .686 .168 / .272 .534 .131), clipped;
- ``sketch``: a pencil sketch: the gray crop colour-dodged by its blurred negative (sigma 2), gray in RGB;
- ``winter``: 40 % desaturated, channels scaled (0.85, 0.95, 1.15), lifted by 0.06 and clipped.

``direction: ab`` (default) translates plain -> styled; ``ba`` swaps the domains (styled -> plain).

Default photos: the everyday scenes only (:data:`DEFAULT_PHOTOS`; A: astronaut, rocket; B: coffee, motorcycle;
test: chelsea). Unpaired domains must show comparable content: with the microscopy and deep-field images in the
pool, domain B was mostly star fields and stained tissue, whose sketches are sparse dots, and CycleGAN learned to
draw dots on every photo (FID 0.54x untrained after 8 epochs, against 0.44x after 6 with these photos).
``photos:`` / ``test_photos:`` choose others.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imgx.data.photo_pairs import DEFAULT_SIZE, data_seed, gray_of, split_photos
from imgx.data.photos import crops, held_out_rng
from imgx.errors import DataError

DEFAULT_PHOTOS = ("astronaut", "coffee", "rocket", "motorcycle")  # alternately to A and B
DEFAULT_TEST_PHOTOS = ("chelsea",)
SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def sepia(rgb: np.ndarray) -> np.ndarray:
    """Sepia-toned crops, ``(N, H, W, 3)`` uint8."""
    return _to_uint8((rgb.astype(np.float64) / 255.0) @ SEPIA.T)


def sketch(rgb: np.ndarray) -> np.ndarray:
    """Pencil-sketch crops (colour dodge of the gray by its blurred negative), ``(N, H, W, 3)`` uint8."""
    from scipy.ndimage import gaussian_filter

    g = gray_of(rgb)[..., 0].astype(np.float64) / 255.0
    blurred_negative = gaussian_filter(1.0 - g, sigma=(0, 2, 2), mode="reflect")
    dodge = np.minimum(1.0, g / np.maximum(1e-3, 1.0 - blurred_negative))
    return np.repeat(_to_uint8(dodge)[..., None], 3, axis=-1)


def winter(rgb: np.ndarray) -> np.ndarray:
    """Cold, washed-out crops, ``(N, H, W, 3)`` uint8."""
    x = rgb.astype(np.float64) / 255.0
    g = x @ np.array([0.299, 0.587, 0.114])
    x = 0.6 * x + 0.4 * g[..., None]
    return _to_uint8(x * np.array([0.85, 0.95, 1.15]) + 0.06)


def load(spec, seed: int, task: str) -> dict[str, Any]:
    """Unpaired crops with a hidden truth (see the module docstring and :mod:`imgx.data`).

    Returns ``train_a``, ``train_b`` (from different photos), ``test_a``, ``test_b`` (different held-out crops),
    ``test_b_true`` (the style applied to ``test_a``, or its inverse under ``ba``), ``test_a_true`` and
    ``paired=False``; tensors ``(N, 3, S, S)`` in ``[-1, 1]``.
    """
    from imgx.data import STYLES
    from imgx.imageio import array_to_tensor

    if not spec.style:
        raise DataError(f"data set {spec.name!r} needs a style ({', '.join(STYLES)})")
    style = STYLES.get(spec.style)
    size = spec.image_size or DEFAULT_SIZE
    if spec.photos is None:  # the everyday scenes (module docstring)
        spec = spec.model_copy(update={"photos": [*DEFAULT_PHOTOS, *DEFAULT_TEST_PHOTOS],
                                       "test_photos": spec.test_photos or list(DEFAULT_TEST_PHOTOS)})
    train_names, test_names = split_photos(spec)
    if len(train_names) < 2:
        raise DataError(f"{spec.name}: domains A and B need two different training photos, found {train_names}")
    names_a, names_b = train_names[0::2], train_names[1::2]
    rng = np.random.default_rng(data_seed(spec, spec.style))
    n_train, n_test = spec.train or 2048, spec.test or 512
    plain_a = crops(names_a, n_train, size, rng)
    plain_b = crops(names_b, n_train, size, rng)
    test_plain = crops(test_names, 2 * n_test, size, held_out_rng(spec, size, 2 * n_test, test_names))
    test_x, test_y = test_plain[:n_test], test_plain[n_test:]
    a = {"train": plain_a, "test": test_x, "test_true": test_y}
    b = {"train": style(plain_b), "test": style(test_y), "test_true": style(test_x)}
    if spec.direction == "ba":
        a, b = ({"train": style(plain_a), "test": style(test_x), "test_true": style(test_y)},
                {"train": plain_b, "test": test_y, "test_true": test_x})
    t = array_to_tensor
    return {"train_a": t(a["train"]), "train_b": t(b["train"]), "test_a": t(a["test"]), "test_b": t(b["test"]),
            "test_b_true": t(b["test_true"]), "test_a_true": t(a["test_true"]), "paired": False,
            "info": {"source": "scikit-image", "style": spec.style, "direction": spec.direction or "ab",
                     "photos_a": names_a, "photos_b": names_b, "test_photos": test_names, "image_size": size,
                     "train": n_train, "test": n_test, "crop_seed": "fixed by the data options"}}
