"""Fixtures for the edit area: the tiny InstructPix2Pix pipeline and a tiny CLIP, built once and saved to disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import write_suite


@pytest.fixture(scope="session")
def tiny_pipe_dir(_imgx_cache) -> Path:
    """The cached tiny pipeline folder, exactly as ``weights: tiny`` builds it."""
    from imgx.models.tiny import tiny_pix2pix_dir

    return tiny_pix2pix_dir(os.environ["IMGX_CACHE"])


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A tiny CLIPModel + tokenizer + image processor saved with save_pretrained."""
    from imgx.models.tiny import save_tiny_clip

    return save_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


def edit_suite(folder: Path, *, clip: Path | None = None, extra: str = "", case: str = "", sweep: str = "",
               metrics: str = "[ssim, psnr, mse, latency]", data: str = "{name: photos, image_size: 32, count: 2}",
               prompts: str = '["make it a pencil sketch", "turn the background into a cyberpunk city"]',
               model: str = "{name: instruct-pix2pix, weights: tiny}") -> Path:
    """A one-case edit suite on the tiny pipeline (32 px, 3 steps) with optional tiny-CLIP metric options."""
    options = ""
    if clip is not None:
        options = ("    metric_options:\n" + "".join(
            f"      {m}: {{model: '{clip}'{extra}}}\n"
            for m in ("clip_score", "clip_image_similarity", "clip_directional_similarity")
            if m in metrics))
    text = f"""
suite: edit-test
seed: 0
cases:
  - id: edit
    task: edit
    model: {model}
    data: {data}
{f"    prompts: {prompts}" + chr(10) if prompts else ""}    inference: {{num_inference_steps: 3, warmup: 0, repeats: 1}}
    metrics: {metrics}
{options}{case}{sweep}"""
    return write_suite(folder, text)
