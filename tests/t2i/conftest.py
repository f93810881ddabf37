"""Fixtures for the text-to-image area: the tiny text-to-image pipeline and a suite writer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import write_suite


@pytest.fixture(scope="session")
def tiny_t2i_dir(_imgx_cache) -> Path:
    """The cached tiny text-to-image pipeline folder, exactly as ``weights: tiny`` builds it."""
    from imgx.models.tiny import tiny_text2image_dir

    return tiny_text2image_dir(os.environ["IMGX_CACHE"])


def t2i_suite(folder: Path, *, model: str = "{name: stable-diffusion, weights: tiny}",
              data: str = "{name: digits, image_size: 16}",
              prompts: str | None = '["a handwritten digit 3", "a red apple"]', samples: int = 2,
              inference: str = "{num_inference_steps: 3, warmup: 0, repeats: 1}",
              metrics: str = "[prompt_accuracy, fid, latency]", extra: str = "") -> Path:
    """A one-case text-to-image suite (tiny pipeline, 16 px, 3 steps by default)."""
    text = f"""
suite: t2i-test
seed: 0
cases:
  - id: t2i
    task: text-to-image
    model: {model}
    data: {data}
{f"    prompts: {prompts}" + chr(10) if prompts is not None else ""}    samples: {samples}
    inference: {inference}
    metrics: {metrics}
{extra}"""
    return write_suite(folder, text)
