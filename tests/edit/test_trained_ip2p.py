"""An InstructPix2Pix trained here on photo-edits behaves as the paper says, measured through imgx's edit task.

One short training is shared by every test here (a session run, cached on disk). The sweeps go through the real
runner, so a guidance parameter that imgx swapped or dropped anywhere would break these assertions.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from scipy.stats import spearmanr

from imgx.results import load_run
from imgx.runner import run_suite
from tests.helpers import ROOT, write_suite

# One short training (the quickstart's model, ~65 s on 2 CPU cores) and eight swept cases; the guidance suite's
# recipe on three suite seeds (~2.5-3 min each) for the issue's targets. Minutes: slow.
pytestmark = pytest.mark.slow

RECIPE = "{epochs: 13, batch_size: 64, lr: 2.0e-3}"  # suites/quickstart.yaml's edit case
DATA = "{name: photo-edits, image_size: 16, train: 2048, test: 4, instructions: [grayscale, invert, brighter, darker]}"
SUITE_RECIPE = "{epochs: 28, batch_size: 64, lr: 2.0e-3}"  # suites/ip2p-guidance.yaml's trained case
SUITE_DATA = "{name: photo-edits, image_size: 16, train: 2048, test: 8}"
# Suite seeds for the targets (issue 27): 0 (the suite's own) and the two that sat at the 85% target before the
# denoiser's Min-SNR weighting, on either side depending on the CPU (1: 0.844 and 0.953; 17: 0.859 and 0.750). With
# it, five seeds on one 2-core AMD EPYC: see bench/RESULTS.md (session 12) and `python bench/seed_spread.py`.
SUITE_SEEDS = (0, 1, 17)
TEXT_LOW = "edit[image_guidance_scale=1.5,guidance_scale=1.0]"
TEXT_HIGH = "edit[image_guidance_scale=1.5,guidance_scale=7.5]"


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> tuple[dict, list[dict], Path]:
    """The quickstart's edit model (its case id, data, recipe and suite seed: the same model, so the quickstart run
    after the quality tier in .ci/run reuses it from the shared cache), swept here; then a second suite with the
    same case id and training split puts prompts outside the training set to that model (no second training)."""
    folder = tmp_path_factory.mktemp("trained-ip2p")
    common = f"""
        seed: 0
        defaults:
          task: edit
          model: {{name: instruct-pix2pix, weights: train}}
          data: {DATA}
          train: {RECIPE}
          inference: {{num_inference_steps: 20, warmup: 0, repeats: 1}}
          metrics: [target_mse, input_ssim, instruction_accuracy]
        """
    suite = write_suite(folder, f"""
        suite: trained
        {common.strip()}
        cases:
          - id: edit
            sweep: {{image_guidance_scale: [1.0, 1.5, 2.0, 3.0], guidance_scale: [1.0, 7.5]}}
        """)
    outside = write_suite(folder, f"""
        suite: trained-outside
        {common.strip()}
        cases:
          - id: edit   # the same id, suite seed and training split as above: the same model, reused
            data: {{name: photo-edits, image_size: 16, train: 2048, test: 1}}
            prompts: ["invert the colors", "make it snowy"]
        """, "outside.yaml")
    records, rows = _run(suite, folder / "out")
    records["outside"] = _run(outside, folder / "outside")[0]["edit"]
    return records, rows, folder / "out"


def _run(suite: Path, out: Path) -> tuple[dict, list[dict]]:
    """Run ``suite`` into ``out`` (it must pass); its records by case id and its ``results.csv`` rows."""
    summary = run_suite(suite, out, quiet=True, report=False)
    assert summary.exit_code == 0, summary.failed_cases
    with open(out / "results.csv", newline="", encoding="utf-8") as fh:
        return {r["case_id"]: r for r in load_run(out)[1]}, list(csv.DictReader(fh))


def _value(rows, case_id: str, metric: str, reference: str = "") -> float:
    row = next(r for r in rows if r["case_id"] == case_id and r["metric"] == metric and r["reference"] == reference)
    assert row["status"] == "ok", row
    return float(row["value"])


def test_raising_image_guidance_keeps_more_of_the_input(trained_run):
    _, rows, _ = trained_run
    scales = [1.0, 1.5, 2.0, 3.0]
    ssim = [_value(rows, f"edit[image_guidance_scale={s},guidance_scale=7.5]", "input_ssim") for s in scales]
    assert spearmanr(scales, ssim).statistic >= 0.8, ssim


def test_text_guidance_makes_the_instruction_win(trained_run):
    _, rows, _ = trained_run
    low = _value(rows, TEXT_LOW, "instruction_accuracy")
    high = _value(rows, TEXT_HIGH, "instruction_accuracy")
    assert high > low, (low, high)
    chance = _value(rows, TEXT_HIGH, "instruction_accuracy", "identity")
    assert high > chance


def test_trained_case_reports_its_provenance(trained_run):
    records, rows, _ = trained_run
    rec = records[TEXT_HIGH]
    assert rec["info"]["label"] == "trained here on photo-edits (2048 crops, 4 instructions)"
    assert rec["detail"].startswith("trained here on photo-edits")
    assert {h["stage"] for h in rec["history"]} == {"vae", "denoiser"}
    # One training serves the sweep: the point that trained reports its time, the others 0 s and who trained it.
    seconds = {cid: _value(rows, cid, "train_seconds") for cid in records if cid.startswith("edit[")}
    trainer = [cid for cid, v in seconds.items() if v > 0]
    assert len(trainer) == 1, seconds
    reused = next(r for r in records[TEXT_HIGH]["rows"] if r["metric"] == "train_seconds")
    assert TEXT_HIGH == trainer[0] or reused["detail"].startswith(f"reused, trained by {trainer[0]}")
    floor = _value(rows, TEXT_HIGH, "target_mse", "vae-floor")
    assert 0 < floor < _value(rows, TEXT_HIGH, "target_mse", "identity")
    assert rec["info"]["trained"]["model_kind"] == "instruct-pix2pix"


def test_the_trained_pipeline_follows_its_instruction_and_its_image(trained_run):
    """The training loop passes both conditionings (issue 14), checked on the bare diffusers pipeline loaded from
    the trained folder: on held-out crops, each output is closer to its own instruction's target than to the other
    instruction's, and closer to its own crop's target than to another crop's (the image reaches the model)."""
    import numpy as np
    import torch

    from imgx.data.photo_edits import EDITS, apply_edit
    from imgx.data.photos import crops
    from imgx.imageio import array_to_tensor, to_unit
    from imgx.models.trained import load_pipeline

    records, _, _ = trained_run
    pipe = load_pipeline(records[TEXT_HIGH]["info"]["trained"]["folder"], "instruct-pix2pix")
    pipe.set_progress_bar_config(disable=True)
    test = crops(["chelsea", "coffee"], 20, 16, np.random.default_rng(1))  # photos never used in training
    target = {key: to_unit(array_to_tensor(apply_edit(key, test))) for key in ("grayscale", "invert")}
    image = to_unit(array_to_tensor(test))
    right = 0
    for key, other in (("grayscale", "invert"), ("invert", "grayscale")):
        out = pipe([EDITS[key].instruction] * len(test), image=image, num_inference_steps=20, guidance_scale=7.5,
                   image_guidance_scale=1.5, output_type="pt", generator=torch.Generator().manual_seed(0)).images
        own = ((out - target[key]) ** 2).mean((1, 2, 3))
        right += int((own < ((out - target[other]) ** 2).mean((1, 2, 3))).sum())
        assert own.mean() < ((out - target[key].roll(1, 0)) ** 2).mean(), key
    assert right / (2 * len(test)) >= 0.8, right


def test_prompts_outside_the_training_set_run_and_are_flagged(trained_run):
    records, rows, _ = trained_run
    rec = records["outside"]
    # one crop x 2 prompts, on the rows of the 4 instructions the entry inherits from `defaults` (a deep merge)
    assert rec["status"] == "ok" and len(rec["outputs"]) == 8
    assert rec["info"]["prompts_outside_training_set"] == ["make it snowy"]
    assert "1 prompt(s) outside the trained instruction set" in rec["detail"]
    assert {o["prompt"]: o["in_training_set"] for o in rec["outputs"]} == {"invert the colors": True,
                                                                          "make it snowy": False}
    assert rec["info"]["trained"]["model_kind"] == "instruct-pix2pix"


def test_the_recipe_here_is_the_guidance_suites():
    """SUITE_RECIPE and SUITE_DATA are suites/ip2p-guidance.yaml's `trained` case (so the targets are its)."""
    import yaml

    case = next(c for c in yaml.safe_load((ROOT / "suites" / "ip2p-guidance.yaml").read_text())["cases"]
                if c["id"] == "trained")
    assert case["train"] == yaml.safe_load(SUITE_RECIPE) and case["data"] == yaml.safe_load(SUITE_DATA)


@pytest.fixture(scope="module", params=SUITE_SEEDS)
def at_defaults(request, tmp_path_factory) -> tuple[int, list[dict]]:
    """The guidance suite's recipe trained with one suite seed, scored at InstructPix2Pix's defaults (image
    guidance 1.5, text guidance 7.5, 20 steps) on the held-out crops (the same crops for every seed)."""
    folder = tmp_path_factory.mktemp(f"trained-targets-{request.param}")
    suite = write_suite(folder, f"""
        suite: trained-targets
        seed: {request.param}
        cases:
          - id: trained
            task: edit
            model: {{name: instruct-pix2pix, weights: train}}
            data: {SUITE_DATA}
            train: {SUITE_RECIPE}
            inference: {{num_inference_steps: 20, scheduler: euler-ancestral, image_guidance_scale: 1.5,
                        guidance_scale: 7.5, warmup: 0, repeats: 1}}
            metrics: [target_mse, instruction_accuracy]
        """)
    return request.param, _run(suite, folder / "out")[1]


def test_guidance_suite_recipe_meets_the_issue_targets_on_every_seed(at_defaults):
    """Per suite seed, not on the mean: >= 85% of instructions followed and `identity` beaten on >= 6 of 8."""
    seed, rows = at_defaults
    accuracy = _value(rows, "trained", "instruction_accuracy")
    names = sorted({r["metric"][len("target_mse["):-1] for r in rows if r["metric"].startswith("target_mse[")})
    beats = [n for n in names if _value(rows, "trained", f"target_mse[{n}]")
             < _value(rows, "trained", f"target_mse[{n}]", "identity")]
    print(f"\nsuite seed {seed}: instruction accuracy {accuracy:.3f}; below identity for {len(beats)} of "
          f"{len(names)}: {beats}; vae-floor {_value(rows, 'trained', 'target_mse', 'vae-floor'):.4f}; "
          f"train {_value(rows, 'trained', 'train_seconds'):.1f} s")
    assert len(names) == 8
    assert accuracy >= 0.85
    assert len(beats) >= 6


def test_the_short_recipe_here_is_the_quickstarts():
    """RECIPE and DATA are suites/quickstart.yaml's `edit` case (so the short-recipe checks are the quickstart's)."""
    import yaml

    case = next(c for c in yaml.safe_load((ROOT / "suites" / "quickstart.yaml").read_text())["cases"]
                if c["id"] == "edit")
    assert case["train"] == yaml.safe_load(RECIPE) and case["data"] == yaml.safe_load(DATA)
