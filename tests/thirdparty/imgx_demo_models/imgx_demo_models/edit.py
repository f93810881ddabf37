"""Editors: one that applies photo-edits' exact edit per instruction, and others for imgx's tests."""

from __future__ import annotations

import numpy as np
from PIL import Image


class PerfectEditor:
    """Applies the exact edit each ``photo-edits`` instruction defines (imgx's data set is the ground truth)."""

    def __init__(self, unknown: str = "identity"):
        self.unknown = unknown

    def __call__(self, images: list[Image.Image], instructions: list[str], seeds: list[int],
                 guidance_scale: float = 7.5) -> list[np.ndarray]:
        from imgx.data.photo_edits import apply_edit, edit_key

        out = []
        for image, instruction in zip(images, instructions, strict=True):
            key = edit_key(instruction)
            arr = np.asarray(image.convert("RGB"))
            out.append(apply_edit(key, arr[None])[0] if key else arr)
        return out


def identity_editor(images, instructions, seeds):
    """Returns each input unchanged (PIL images): the ``identity`` reference, as a model."""
    return [im.copy() for im in images]


def strength_editor(images, instructions, seeds, strength: float = 0.5, scale: float = 1.0):
    """Blends towards gray by ``strength``; it takes no guidance_scale (a sweep of it is refused)."""
    return [(np.asarray(im, dtype=np.float64) / 255.0 * (1 - strength) + 0.5 * strength) * scale for im in images]


def raising_editor(images, instructions, seeds):
    """Raises on one instruction."""
    if any("invert" in i for i in instructions):
        raise ValueError("cannot invert")
    return list(images)


def nan_editor(images, instructions, seeds):
    """Returns float images full of NaN."""
    return [np.full((im.height, im.width, 3), np.nan) for im in images]


def wrong_count_editor(images, instructions, seeds):
    """Returns no images at all."""
    return []


def make_blender(strength: float = 0.5):
    """A factory function returning an editor (its signature is known only once it is built)."""
    return lambda images, instructions, seeds: strength_editor(images, instructions, seeds, strength=strength)
