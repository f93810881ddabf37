"""The edit task end to end through the real runner, on the tiny pipeline and a tiny CLIP."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgx.results import load_run
from imgx.runner import RunContext, run_case, run_suite
from imgx.suite import expand, load_suite
from imgx.tasks.edit import classify, to_uint8
from tests.edit.conftest import edit_suite


def _rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _outputs(out: Path) -> list[dict]:
    with open(out / "outputs.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def swept_run(tmp_path_factory, tiny_clip_dir):
    """Two photos x two prompts, swept over two schedulers, every metric."""
    folder = tmp_path_factory.mktemp("edit-run")
    suite = edit_suite(folder, clip=tiny_clip_dir,
                       metrics="[clip_score, clip_image_similarity, clip_directional_similarity, ssim, psnr, mse, "
                               "latency]",
                       sweep="    sweep:\n      scheduler: [euler-ancestral, ddim]\n")
    summary = run_suite(suite, folder / "out", quiet=True, report=False)
    return summary, folder / "out"


def test_sweep_rows_outputs_and_info(swept_run):
    summary, out = swept_run
    assert summary.exit_code == 0, summary.failed_cases
    rows = _rows(out)
    ok = {(r["case_id"], r["metric"], r["reference"]): r for r in rows}
    for case_id in ("edit[scheduler=euler-ancestral]", "edit[scheduler=ddim]"):
        for metric in ("clip_score", "clip_image_similarity", "ssim", "psnr", "mse", "latency_ms_p50",
                       "latency_ms_p90", "seconds_per_step", "images_per_second", "peak_memory_mb",
                       "latency_ms_text_encode", "latency_ms_image_encode", "latency_ms_denoise",
                       "latency_ms_vae_decode"):
            row = ok[(case_id, metric, "")]
            assert row["status"] == "ok", (metric, row["detail"])
            assert np.isfinite(float(row["value"]))
        # photos have no captions: directional similarity is unavailable, with the reason, never a number
        direc = ok[(case_id, "clip_directional_similarity", "")]
        assert direc["status"] == "unavailable" and direc["value"] == "" and "captions" in direc["detail"]
        assert ok[(case_id, "clip_score", "input-copy")]["status"] == "ok"
        assert float(ok[(case_id, "ssim", "")]["n"]) == 4
        # stage split is a split: the stages fit inside the whole call
        stages = sum(float(ok[(case_id, f"latency_ms_{s}", "")]["value"])
                     for s in ("text_encode", "image_encode", "denoise", "vae_decode"))
        assert stages <= float(ok[(case_id, "latency_ms_p90", "")]["value"]) * 1.05
    outputs = _outputs(out)
    assert len(outputs) == 8
    assert {o["scheduler"] for o in outputs} == {"euler-ancestral", "ddim"}
    for o in outputs:
        assert (out / o["path"]).is_file() and (out / o["input_image"]).is_file()
        assert o["valid"] == "True" and int(o["seed"]) >= 0
        assert "pencil" not in o["path"].split("/")[0]  # prompts only ever appear slugged in file names
    record = load_run(out)[1][0]
    assert record["info"]["random_weights"] is True and "random-weight" in record["info"]["label"]
    assert record["info"]["torch_threads"] >= 1 and record["info"]["dtype"] == "float32"
    assert record["info"]["timing"]["timed_calls"] == 4
    assert (out / record["artifacts"]["grid"]).is_file()


def test_outputs_reproduce_with_a_bare_diffusers_call(swept_run, tiny_pipe_dir):
    """outputs.csv holds everything needed: a plain pipe(...) call with that seed gives the same pixels."""
    from diffusers import DDIMScheduler, EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

    _, out = swept_run
    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(tiny_pipe_dir, safety_checker=None,
                                                                 requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    base = pipe.scheduler.config
    classes = {"euler-ancestral": EulerAncestralDiscreteScheduler, "ddim": DDIMScheduler}
    outputs = _outputs(out)
    for o in outputs[::3]:  # 3 of the 8 cover both schedulers and both photos
        pipe.scheduler = classes[o["scheduler"]].from_config(base)
        image = pipe(o["prompt"], image=Image.open(out / o["input_image"]),
                     num_inference_steps=int(o["num_inference_steps"]), guidance_scale=float(o["guidance_scale"]),
                     image_guidance_scale=float(o["image_guidance_scale"]),
                     generator=torch.Generator("cpu").manual_seed(int(o["seed"]))).images[0]
        saved = np.asarray(Image.open(out / o["path"]))
        np.testing.assert_array_equal(np.asarray(image), saved)


def test_rerun_gives_identical_images_and_numbers(swept_run, tmp_path, tiny_clip_dir):
    _, out = swept_run
    suite = edit_suite(tmp_path, clip=tiny_clip_dir, metrics="[clip_score, ssim]",
                       sweep="    sweep:\n      scheduler: [ddim]\n")
    run_suite(suite, tmp_path / "again", quiet=True, report=False)
    first = {(o["input_name"], o["prompt"]): o for o in _outputs(out) if o["scheduler"] == "ddim"}
    for o in _outputs(tmp_path / "again"):
        ref = first[(o["input_name"], o["prompt"])]
        assert o["seed"] == ref["seed"]
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "again" / o["path"])),
                                      np.asarray(Image.open(out / ref["path"])))
    ssim = {r["metric"]: r["value"] for r in _rows(tmp_path / "again") if r["reference"] == ""}
    ref_ssim = {r["metric"]: r["value"] for r in _rows(out)
                if r["case_id"] == "edit[scheduler=ddim]" and r["reference"] == ""}
    assert ssim["ssim"] == ref_ssim["ssim"] and ssim["clip_score"] == ref_ssim["clip_score"]


def _case(folder: Path, **kwargs):
    suite = edit_suite(folder, **kwargs)
    return expand(load_suite(suite))[0]


def test_safety_checker_hits_are_counted_and_fail_the_case(tmp_path):
    from imgx.models.instruct_pix2pix import load_pipeline

    case = _case(tmp_path, model="{name: instruct-pix2pix, weights: tiny, safety_checker: true}")
    ctx = RunContext(out=tmp_path / "out", quiet=True)
    loaded = load_pipeline(case.spec.model, "cpu", ctx.cache_dir, ctx.resources)
    with torch.no_grad():  # make every image a hit: cos - weight > 0 always
        loaded.pipe.safety_checker.concept_embeds_weights.fill_(-2.0)
    result = run_case(case, ctx)
    assert result.status == "failed"
    assert "4 of 4 outputs invalid (4 safety)" in result.detail
    assert all(o["invalid_reason"] == "safety" and o["valid"] is False for o in result.outputs)
    ssim = [r for r in result.rows if r.metric == "ssim"][0]
    assert ssim.status == "failed" and ssim.value is None


def test_nan_outputs_tolerated_up_to_max_invalid(tmp_path):
    from imgx.models.instruct_pix2pix import load_pipeline

    case = _case(tmp_path, case="    max_invalid: 4\n")
    ctx = RunContext(out=tmp_path / "out", quiet=True)
    loaded = load_pipeline(case.spec.model, "cpu", ctx.cache_dir, ctx.resources)
    with torch.no_grad():  # what a float16 VAE overflow looks like downstream
        loaded.pipe.vae.decoder.conv_out.bias.fill_(float("nan"))
    result = run_case(case, ctx)
    assert result.status == "ok" and "4 of 4 outputs invalid" in result.detail
    assert result.info["invalid_reasons"] == {"nan": 4}
    assert all((ctx.out / o["path"]).is_file() for o in result.outputs)


def test_classify():
    ok = np.full((8, 8, 3), 0.5, np.float32)
    assert classify(ok, None) == ""
    assert classify(ok, True) == "safety"
    nan = ok.copy()
    nan[0, 0, 0] = np.nan
    assert classify(nan, False) == "nan"
    assert classify(np.full((8, 8, 3), 2 / 255, np.float32), None) == "black"
    assert classify(np.full((8, 8, 3), 5 / 255, np.float32), None) == ""
    assert to_uint8(np.array([[[0.5, 1.0, np.nan]]])).tolist() == [[[128, 255, 0]]]


def test_edit_csv_instructions_and_captions(tmp_path, tiny_clip_dir):
    """Per-image instructions from a CSV; with captions the directional similarity is computed."""
    for i, colour in enumerate([(200, 30, 30), (30, 30, 200)]):
        Image.new("RGB", (40, 40), colour).save(tmp_path / f"im{i}.png")
    (tmp_path / "edits.csv").write_text(
        "image,instruction,input_caption,output_caption\n"
        "im0.png,make it blue,a red square,a blue square\n"
        "im1.png,make it red,a blue square,a red square\n", encoding="utf-8")
    suite = edit_suite(tmp_path, clip=tiny_clip_dir, prompts="",
                       data=f"{{name: edit-csv, path: '{tmp_path / 'edits.csv'}', image_size: 32}}",
                       metrics="[clip_score, clip_directional_similarity]")
    summary = run_suite(suite, tmp_path / "out", quiet=True, report=False)
    assert summary.exit_code == 0, summary.failed_cases
    rows = {(r["metric"], r["reference"]): r for r in _rows(tmp_path / "out")}
    assert rows[("clip_directional_similarity", "")]["status"] == "ok"
    assert -1 <= float(rows[("clip_directional_similarity", "")]["value"]) <= 1
    assert "output caption" in rows[("clip_score", "")]["detail"]
    assert [o["prompt"] for o in _outputs(tmp_path / "out")] == ["make it blue", "make it red"]


def test_derived_captions_are_opt_in_and_labelled(tmp_path, tiny_clip_dir):
    suite = edit_suite(tmp_path, clip=tiny_clip_dir, extra=", derive_captions: true",
                       metrics="[clip_directional_similarity]", data="{name: photos, image_size: 32, count: 1}")
    run_suite(suite, tmp_path / "out", quiet=True, report=False)
    row = _rows(tmp_path / "out")[0]
    assert row["status"] == "ok" and "captions derived" in row["detail"]


@pytest.mark.gpu
def test_cuda_half_precision_and_synchronised_latency(tmp_path):
    for dtype in ("float16", "bfloat16"):
        case = _case(tmp_path / dtype, model=f"{{name: instruct-pix2pix, weights: tiny, dtype: {dtype}}}",
                     case="    device: cuda\n    max_invalid: 0\n")
        result = run_case(case, RunContext(out=tmp_path / dtype / "out", quiet=True))
        assert result.status == "ok", result.detail
        rows = {r.metric: r for r in result.rows}
        assert rows["latency_ms_p50"].value > 0 and "CUDA" in rows["peak_memory_mb"].detail
        assert result.info["timing"]["cuda_synchronized"] is True
        assert result.info["model"]["dtype"] == dtype


def test_size_not_a_multiple_of_the_vae_factor(tmp_path):
    """The tiny VAE halves sizes: a 35 px input gives a 34 px output; metrics compare at the output size."""
    case = _case(tmp_path, data="{name: photos, image_size: 35, count: 1}", prompts='["make it blue"]')
    result = run_case(case, RunContext(out=tmp_path / "out", quiet=True))
    assert result.status == "ok", result.detail
    out = np.asarray(Image.open(tmp_path / "out" / result.outputs[0]["path"]))
    assert out.shape == (34, 34, 3)
    assert {r.metric: r.status for r in result.rows}["ssim"] == "ok"
