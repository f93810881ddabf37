"""Helpers shared by the tests (import as ``from tests.helpers import ...``)."""

from __future__ import annotations

import csv
import os
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

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

TIMING = {"train_seconds", "train_images_per_second"}


def quality_rows(out: Path) -> list[dict[str, str]]:
    """The rows of ``out/results.csv`` without the timing metrics (those vary run to run)."""
    with open(out / "results.csv", newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["metric"] not in TIMING]


def scipy_fid(mu1, s1, mu2, s2) -> float:
    """The classic FID reference (pytorch-fid): scipy.linalg.sqrtm of the non-symmetric product."""
    import numpy as np
    import scipy.linalg

    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def set_offline_environment() -> None:
    """Tests and benchmarks never reach a hub: weights come from folders the tests build."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@contextmanager
def private_imgx_cache(folder: Path) -> Iterator[Path]:
    """Point ``IMGX_CACHE`` at ``folder`` (tiny pipelines, feature extractors) and restore it afterwards."""
    old = os.environ.get("IMGX_CACHE")
    os.environ["IMGX_CACHE"] = str(folder)
    try:
        yield folder
    finally:
        if old is None:
            os.environ.pop("IMGX_CACHE", None)
        else:
            os.environ["IMGX_CACHE"] = old


def skip_gpu_items_without_cuda(items) -> None:
    """Mark collected items carrying ``gpu`` as skipped, with the reason, where CUDA is absent."""
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: torch.cuda.is_available() is False on this machine")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)
