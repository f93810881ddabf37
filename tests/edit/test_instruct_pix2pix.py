"""Loading the pipeline: tiny from configs, reuse, scheduler swaps, settings, and every refusal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgx.errors import WeightsError
from imgx.models import MODELS
from imgx.models.instruct_pix2pix import check_folder, configure, load_pipeline, resolve_weights, set_scheduler
from imgx.suite.schema import ModelSpec


def _spec(**kw) -> ModelSpec:
    return ModelSpec(name="instruct-pix2pix", **{"weights": "tiny", **kw})


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".complete"))
    return dst


def test_registry_entry_is_the_loader():
    assert MODELS.get("instruct-pix2pix") is load_pipeline


def test_tiny_loads_once_and_scheduler_swap_keeps_the_pipeline(tmp_path):
    resources: dict = {}
    a = load_pipeline(_spec(), "cpu", tmp_path, resources)
    assert a.info["random_weights"] is True and a.pipe.unet.config.in_channels == 8
    set_scheduler(a, "dpm++-2m")
    b = load_pipeline(_spec(), "cpu", tmp_path, resources)
    assert b is a and b.pipe.unet is a.pipe.unet
    assert type(b.pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    set_scheduler(b, "euler")
    assert type(b.pipe.scheduler).__name__ == "EulerDiscreteScheduler"
    # the new scheduler is configured from the original one, not from the previous swap
    assert b.pipe.scheduler.config.beta_schedule == "scaled_linear"
    c = load_pipeline(_spec(dtype="bfloat16"), "cpu", tmp_path, resources)
    assert c is not a and c.pipe.unet.dtype == torch.bfloat16
    assert resources["instruct-pix2pix"] is c  # one pipeline kept at a time


def test_attention_and_channels_last_settings(tmp_path):
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    loaded = load_pipeline(_spec(), "cpu", tmp_path, {})
    image = Image.new("RGB", (32, 32), (120, 60, 30))

    def run():
        return loaded.pipe("make it blue", image=image, num_inference_steps=2, output_type="np",
                           generator=torch.Generator().manual_seed(0)).images[0]

    sdpa = run()
    assert all(isinstance(p, AttnProcessor2_0) for p in loaded.pipe.unet.attn_processors.values())
    configure(loaded, attention="math", channels_last=True)
    assert all(isinstance(p, AttnProcessor) for p in loaded.pipe.unet.attn_processors.values())
    conv = loaded.pipe.unet.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(run(), sdpa, atol=1e-4)  # same maths, different kernels and layout
    configure(loaded, attention="sdpa", channels_last=False)
    assert loaded.pipe.unet.conv_in.weight.is_contiguous()


def test_missing_hub_weights_offline_is_a_weights_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(WeightsError, match="not in the local Hugging Face cache.*`hf download "):
        resolve_weights("timbrooks/instruct-pix2pix", tmp_path)


def test_missing_weights_exit_code_2(tmp_path, monkeypatch, capsys):
    from imgx.cli import main
    from tests.edit.conftest import edit_suite

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    suite = edit_suite(tmp_path, model="{name: instruct-pix2pix, weights: nobody/no-such-pipeline}")
    assert main(["run", str(suite), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "hf download nobody/no-such-pipeline" in capsys.readouterr().err


def test_not_a_path_nor_hub_id(tmp_path):
    with pytest.raises(WeightsError, match="no such folder"):
        resolve_weights(str(tmp_path / "missing" / "folder"), tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(WeightsError, match="is a file"):
        resolve_weights(str(tmp_path / "model.safetensors"), tmp_path)


def test_folder_that_is_not_a_pipeline(tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(WeightsError, match="not a diffusers pipeline folder"):
        check_folder(tmp_path)


def test_pickle_only_weights_are_refused(tiny_pipe_dir, tmp_path):
    folder = _copy(tiny_pipe_dir, tmp_path / "pickled")
    for f in (folder / "unet").glob("*.safetensors"):
        f.unlink()
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(WeightsError, match="only pickle checkpoints.*safetensors only"):
        resolve_weights(str(folder), tmp_path)


def test_remote_code_is_refused(tiny_pipe_dir, tmp_path):
    folder = _copy(tiny_pipe_dir, tmp_path / "auto_map")
    config = json.loads((folder / "unet" / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling.MyUNet"}
    (folder / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="remote code"):
        check_folder(folder)

    folder = _copy(tiny_pipe_dir, tmp_path / "custom")
    index = json.loads((folder / "model_index.json").read_text())
    index["unet"] = ["my_unet_module", "MyUNet"]
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(WeightsError, match="remote code"):
        check_folder(folder)

    folder = _copy(tiny_pipe_dir, tmp_path / "script")
    (folder / "pipeline.py").write_text("print('hi')\n")
    with pytest.raises(WeightsError, match="Python files"):
        check_folder(folder)


def test_safety_checker_requested_but_absent(tiny_pipe_dir, tmp_path):
    folder = _copy(tiny_pipe_dir, tmp_path / "nochecker")
    shutil.rmtree(folder / "safety_checker")
    index = json.loads((folder / "model_index.json").read_text())
    index["safety_checker"] = [None, None]
    (folder / "model_index.json").write_text(json.dumps(index))
    check_folder(folder)  # fine without it
    with pytest.raises(WeightsError, match="safety_checker: false"):
        check_folder(folder, safety_checker=True)


def test_local_folder_loads_through_the_same_path(tiny_pipe_dir, tmp_path):
    folder = _copy(tiny_pipe_dir, tmp_path / "mine")
    loaded = load_pipeline(_spec(weights=str(folder)), "cpu", tmp_path, {})
    assert loaded.info["source"] == "folder" and loaded.info["random_weights"] is True  # marked by imgx_tiny.json
    assert loaded.pipe.safety_checker is None  # off by default
    with_checker = load_pipeline(_spec(weights=str(folder), safety_checker=True), "cpu", tmp_path, {})
    assert with_checker.pipe.safety_checker is not None


@pytest.mark.slow
def test_compile_setting_matches_eager_and_keeps_stage_hooks(tmp_path):
    """``compile: true`` wraps the UNet with torch.compile; outputs match eager and stage hooks still fire."""
    import shutil as _shutil

    if not (_shutil.which("cc") or _shutil.which("gcc")):
        pytest.skip("torch.compile on CPU needs a C compiler (cc/gcc), none on PATH")
    from imgx.metrics.timing import StageTimer
    from imgx.tasks.diffusion_common import stage_modules as _stages

    loaded = load_pipeline(_spec(), "cpu", tmp_path, {})
    image = Image.new("RGB", (32, 32), (120, 60, 30))

    def run():
        return loaded.pipe("make it blue", image=image, num_inference_steps=2, output_type="np",
                           generator=torch.Generator().manual_seed(0)).images[0]

    eager = run()
    configure(loaded, compile=True)
    assert loaded.pipe.unet is not loaded.base_unet
    run()  # compiles
    with StageTimer(_stages(loaded.pipe)) as timer:
        timer.begin()
        compiled = run()
        stages = timer.end()
    assert stages["denoise"] > 0
    np.testing.assert_allclose(compiled, eager, atol=1e-3)
    configure(loaded, compile=False)
    assert loaded.pipe.unet is loaded.base_unet


def test_missing_variant_is_named(tiny_pipe_dir, tmp_path):
    with pytest.raises(WeightsError, match="no safetensors weights for variant 'fp16'"):
        resolve_weights(str(tiny_pipe_dir), tmp_path, variant="fp16")
