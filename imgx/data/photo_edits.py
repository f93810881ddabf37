"""``photo-edits``: crops of the embedded photos, each with an instruction and the exact image it defines.

Every instruction is a fixed function of the pixels (:data:`EDITS`), so each (input, instruction) pair has
one true target: ground truth for ``target_mse`` and ``instruction_accuracy`` (MagicBrush-style), and training
data for a small InstructPix2Pix trained here. Strengths are chosen so that every target lies well beyond a
small VAE's reconstruction error from its input (a faint blur would not).

The test rows are every held-out crop (from photos never used in training, ``chelsea`` and ``coffee`` by
default) with every instruction, so each input can be scored against the targets of all instructions; they are
drawn from the data options alone (:func:`imgx.data.photos.held_out_rng`), never the case seed or the training
size. The training split (``data["train"]``) is fresh crops of the other photos drawn with the case seed,
instructions in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from imgx.data.photos import crops, held_out_rng, split_photos
from imgx.errors import DataError

DEFAULT_SIZE = 16
DEFAULT_TRAIN = 2048
DEFAULT_TEST = 8
SUBJECTS = {"astronaut": "an astronaut", "chelsea": "a cat", "coffee": "a cup of coffee", "rocket": "a rocket",
            "motorcycle": "a motorcycle", "hubble": "galaxies in deep space", "retina": "a retina",
            "ihc": "stained tissue"}


@dataclass(frozen=True)
class Edit:
    """One instruction: its text, the output caption it implies and the function that makes the target."""

    key: str
    instruction: str
    caption: str  # "{}" is the subject, e.g. "a grayscale photo of {}"
    apply: Callable[[np.ndarray], np.ndarray]  # (N, H, W, 3) float in [0, 1] -> same, unclipped allowed
    spatial: bool = False


def _gray(x: np.ndarray) -> np.ndarray:
    y = x @ np.array([0.299, 0.587, 0.114])
    return np.repeat(y[..., None], 3, axis=-1)


def _sepia(x: np.ndarray) -> np.ndarray:
    m = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])
    return x @ m.T


def _blur(x: np.ndarray) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    sigma = x.shape[1] / 8  # 2 px at 16 px: strong enough to lie beyond a small VAE's own blur
    return gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="reflect")


def _pixelate(x: np.ndarray) -> np.ndarray:
    n, h, w, c = x.shape
    b = max(2, h // 4)  # a 4x4 mosaic
    hb, wb = h // b, w // b
    blocks = x[:, :hb * b, :wb * b].reshape(n, hb, b, wb, b, c).mean(axis=(2, 4))
    out = x.copy()
    out[:, :hb * b, :wb * b] = blocks.repeat(b, axis=1).repeat(b, axis=2)
    return out


def _shift(x: np.ndarray) -> np.ndarray:
    s = max(1, x.shape[2] // 4)  # a quarter of the width; the left edge column is repeated into the gap
    return np.concatenate([np.repeat(x[:, :, :1], s, axis=2), x[:, :, :-s]], axis=2)


EDITS: dict[str, Edit] = {e.key: e for e in (
    Edit("grayscale", "make it grayscale", "a grayscale photo of {}", _gray),
    Edit("invert", "invert the colors", "a photo of {} with inverted colors", lambda x: 1.0 - x),
    Edit("sepia", "make it sepia", "a sepia photo of {}", _sepia),
    Edit("brighter", "make it brighter", "a bright photo of {}", lambda x: 0.5 + 0.5 * x),
    Edit("darker", "make it darker", "a dark photo of {}", lambda x: 0.5 * x),
    Edit("bluer", "make it bluer", "a blue-tinted photo of {}", lambda x: x * [0.5, 0.75, 0.5] + [0, 0, 0.5]),
    Edit("redder", "make it redder", "a red-tinted photo of {}", lambda x: x * [0.5, 0.75, 0.75] + [0.5, 0, 0]),
    Edit("shift", "shift it to the right", "a photo of {}, shifted to the right", _shift, spatial=True),
    Edit("pixelate", "pixelate it", "a pixelated photo of {}", _pixelate, spatial=True),
    Edit("flip", "flip it horizontally", "a mirrored photo of {}", lambda x: x[:, :, ::-1], spatial=True),
    Edit("blur", "blur it", "a blurry photo of {}", _blur, spatial=True),
)}
DEFAULT_EDITS = ("grayscale", "invert", "sepia", "brighter", "darker", "bluer", "shift", "flip")
BY_INSTRUCTION = {e.instruction: e for e in EDITS.values()}


def edit_key(instruction: str) -> str | None:
    """The short key (``grayscale``) of one of :data:`EDITS`' instructions, else None."""
    e = BY_INSTRUCTION.get(instruction)
    return e.key if e else None


def apply_edit(key: str, images: np.ndarray) -> np.ndarray:
    """The exact targets of edit ``key`` for ``(N, H, W, 3)`` uint8 images, as uint8 (rounded, clipped)."""
    out = EDITS[key].apply(images.astype(np.float64) / 255.0)
    return np.clip(np.rint(np.asarray(out) * 255.0), 0, 255).astype(np.uint8)


def resolve_edits(names: list[str] | None) -> list[str]:
    """Edit keys from ``data.instructions`` (keys or full instruction texts); the default eight when None."""
    if not names:
        return list(DEFAULT_EDITS)
    keys = []
    for name in names:
        key = name if name in EDITS else edit_key(name)
        if key is None:
            raise DataError(f"photo-edits: unknown instruction {name!r}; known: "
                            + ", ".join(f"{k} ({e.instruction!r})" for k, e in EDITS.items()))
        if key not in keys:
            keys.append(key)
    return keys


def _crops_by_photo(names: list[str], count: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """``count`` crops spread evenly over the photos (photos.crops per photo) and the photo of each crop."""
    per = [count // len(names) + (1 if i < count % len(names) else 0) for i in range(len(names))]
    arrays, which = [], []
    for name, n in zip(names, per, strict=True):
        if n:
            arrays.append(crops([name], n, size, rng))
            which += [name] * n
    return np.concatenate(arrays), which


def load(spec, seed: int, task: str) -> dict[str, Any]:
    """Load ``photo-edits`` for the edit task (data loader contract in :mod:`imgx.data`).

    Returns the edit dict (``images``, ``names``, ``paths``, ``instructions``, captions, ``targets``) for the
    held-out rows, plus ``train``: ``inputs``/``targets`` as ``(N, H, W, 3)`` uint8 and per-row
    ``instructions`` and captions.
    """
    size = spec.image_size or DEFAULT_SIZE
    keys = resolve_edits(spec.instructions)
    train_names, test_names = split_photos(spec)
    rng = np.random.default_rng(seed)
    n_train, n_test = spec.train or DEFAULT_TRAIN, spec.test or DEFAULT_TEST
    train_in, train_photo = _crops_by_photo(train_names, n_train, size, rng)
    order = rng.permutation(len(train_in))  # photos interleaved, so that instruction k % n meets every photo
    train_in, train_photo = train_in[order], [train_photo[i] for i in order]
    train_keys = [keys[i % len(keys)] for i in range(len(train_in))]
    train_out = np.empty_like(train_in)
    for key in keys:
        idx = [i for i, k in enumerate(train_keys) if k == key]
        train_out[idx] = apply_edit(key, train_in[idx])
    test_in, test_photo = _crops_by_photo(test_names, n_test, size, held_out_rng(spec, size, n_test, test_names))

    images, names, paths, instructions, caps_in, caps_out, targets = [], [], [], [], [], [], []
    for j, (crop, name) in enumerate(zip(test_in, test_photo, strict=True)):
        subject = SUBJECTS.get(name, name)
        edited = {k: apply_edit(k, crop[None])[0] for k in keys}
        for key in keys:
            images.append(Image.fromarray(crop))
            names.append(f"{name}-{j:03d}")
            paths.append(f"photo-edits:{name}:crop{j:03d}")
            instructions.append(EDITS[key].instruction)
            caps_in.append(f"a photo of {subject}")
            caps_out.append(EDITS[key].caption.format(subject))
            targets.append(Image.fromarray(edited[key]))
    instruction_texts = [EDITS[k].instruction for k in keys]
    return {
        "images": images, "names": names, "paths": paths, "instructions": instructions,
        "input_captions": caps_in, "output_captions": caps_out, "targets": targets,
        "train": {"inputs": train_in, "targets": train_out,
                  "instructions": [EDITS[k].instruction for k in train_keys],
                  "input_captions": [f"a photo of {SUBJECTS.get(n, n)}" for n in train_photo],
                  "output_captions": [EDITS[k].caption.format(SUBJECTS.get(n, n))
                                      for k, n in zip(train_keys, train_photo, strict=True)]},
        "info": {"source": "scikit-image", "train_photos": train_names, "test_photos": test_names,
                 "image_size": size, "train": len(train_in), "test_crops": len(test_in), "rows": len(images),
                 "test_seed": "fixed by the data options",
                 "instructions": instruction_texts,
                 "edits": {k: EDITS[k].caption.format("<subject>") for k in keys}},
    }
