"""A text-to-image callable: paints a seeded noise image whose brightness follows the digit in the prompt."""

from __future__ import annotations

import re

import numpy as np


def paint(prompts: list[str], seeds: list[int], guidance_scale: float = 7.5, size: int = 28) -> list[np.ndarray]:
    """One ``(size, size, 3)`` uint8 image per prompt, from its seed."""
    out = []
    for prompt, seed in zip(prompts, seeds, strict=True):
        digit = int(m.group()) if (m := re.search(r"\d", prompt)) else 5
        rng = np.random.default_rng(seed)
        img = rng.random((size, size, 1)) * 0.2 + digit / 12.0
        out.append(np.repeat((img * 255).clip(0, 255).astype(np.uint8), 3, axis=2))
    return out
