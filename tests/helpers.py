"""Helpers shared by the tests (import as ``from tests.helpers import ...``)."""

from __future__ import annotations

import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_suite(folder: Path, text: str, name: str = "suite.yaml") -> Path:
    """Write a dedented suite file and return its path."""
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


TINY_COLORIZE = """
suite: tiny
seed: 0
cases:
  - id: colorizer
    task: colorize
    model: {name: encoder-decoder}
    data: {name: photos, image_size: 16, train: 512, test: 64}
    train: {epochs: 2, batch_size: 64, lr: 1.0e-3}
    metrics: [mse, psnr, ssim]
"""
