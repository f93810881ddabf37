"""Ground-truth edit metrics against hand-computed values, with their identity/oracle/vae-floor rows."""

import math

import numpy as np
import pytest

from imgx.metrics import metric_info
from imgx.metrics.ground_truth import Scored, ground_truth_rows

RNG = np.random.default_rng(0)
INPUT = RNG.integers(20, 236, (16, 16, 3), dtype=np.uint8)
TARGETS = {"make it darker": (INPUT // 2).astype(np.uint8), "invert the colors": (255 - INPUT).astype(np.uint8)}
ALL = ["target_mse", "target_psnr", "target_ssim", "input_ssim", "instruction_accuracy"]


def _rows(outputs: dict[str, np.ndarray], metrics=ALL, **kwargs):
    items = [Scored(out, INPUT, TARGETS[ins], ins, "crop-0") for ins, out in outputs.items()]
    return {(r.metric, r.reference): r for r in ground_truth_rows(metrics, items, seed=0, **kwargs)}


def _mse(a, b):
    return float(((a.astype(float) - b.astype(float)) ** 2).mean() / 255**2)


def test_outputs_equal_to_their_targets_score_perfectly():
    rows = _rows(dict(TARGETS), metrics=["target_mse", "target_ssim", "instruction_accuracy"])
    assert rows[("target_mse", "")].value == 0.0
    assert rows[("target_ssim", "")].value == pytest.approx(1.0)
    assert rows[("instruction_accuracy", "")].value == 1.0
    assert rows[("instruction_accuracy", "")].n == 2
    assert rows[("target_mse[darker]", "")].value == 0.0 and rows[("target_mse[invert]", "")].value == 0.0


def test_identity_and_oracle_references_are_the_input_and_the_target():
    rows = _rows({"make it darker": INPUT, "invert the colors": INPUT})
    want = np.mean([_mse(INPUT, t) for t in TARGETS.values()])
    assert rows[("target_mse", "identity")].value == pytest.approx(want)
    assert rows[("target_mse", "")].value == pytest.approx(want)  # the model returned its input
    assert rows[("target_mse", "oracle")].value == 0.0
    assert rows[("input_ssim", "identity")].value == pytest.approx(1.0)
    assert rows[("input_ssim", "")].value == pytest.approx(1.0)
    assert rows[("instruction_accuracy", "oracle")].value == 1.0
    assert rows[("target_psnr", "oracle")].status == "unavailable"  # infinite, never a made-up number
    darker = rows[("target_mse[darker]", "identity")]
    assert darker.value == pytest.approx(_mse(INPUT, TARGETS["make it darker"]))
    assert "make it darker" in darker.detail


def test_instruction_accuracy_counts_outputs_nearest_their_own_target():
    # "darker" is right; "invert" returned the darker image, which is nearer the darker target: wrong.
    rows = _rows({"make it darker": TARGETS["make it darker"], "invert the colors": TARGETS["make it darker"]})
    assert rows[("instruction_accuracy", "")].value == 0.5
    assert rows[("instruction_accuracy[darker]", "")].value == 1.0
    assert rows[("instruction_accuracy[invert]", "")].value == 0.0


def test_psnr_and_ssim_match_hand_values():
    off = np.clip(TARGETS["make it darker"].astype(int) + 10, 0, 255).astype(np.uint8)
    rows = _rows({"make it darker": off}, metrics=["target_psnr"])
    assert rows[("target_psnr", "")].value == pytest.approx(10 * math.log10(255**2 / 100))
    assert metric_info("target_psnr[darker]").higher_is_better
    assert not metric_info("target_mse[darker]").higher_is_better


def test_vae_floor_rows_and_missing_targets():
    items = [Scored(INPUT, INPUT, TARGETS["make it darker"], "make it darker", "a"),
             Scored(INPUT, INPUT, None, "make it snowy", "a")]
    rows = {(r.metric, r.reference): r for r in ground_truth_rows(["target_mse", "instruction_accuracy"], items, 0,
                                                                  floor_mse=[0.002, None])}
    assert rows[("target_mse", "vae-floor")].value == pytest.approx(0.002)
    assert rows[("target_mse", "")].n == 1 and "1 outputs without a target" in rows[("target_mse", "")].detail
    assert rows[("instruction_accuracy", "")].status == "unavailable"  # one instruction per input: no competitor
    none = ground_truth_rows(["target_mse"], [items[1]], 0)
    assert none[0].status == "unavailable" and "target" in none[0].detail
    assert ground_truth_rows(["target_mse"], [], 0)[0].status == "failed"


def test_per_instruction_names_are_unique_when_slugs_are_cut_or_collide():
    """Two long instructions with the same first 40 characters, and two that slug alike, keep separate rows."""
    long_a = "make the whole picture look like an old photograph from the nineteenth century"
    long_b = "make the whole picture look like an old photograph from the sixties"
    short_a, short_b = "Make it RED!", "make it red"
    targets = {ins: (INPUT // (i + 2)).astype(np.uint8) for i, ins in enumerate((long_a, long_b, short_a, short_b))}
    items = [Scored(t, INPUT, t, ins, "crop-0") for ins, t in targets.items()]
    rows = ground_truth_rows(["target_mse"], items, seed=0)
    names = [r.metric for r in rows if not r.reference]
    assert len(names) == len(set(names)) == 5, names
    per = [n for n in names if "[" in n]
    assert all(len(n) <= len("target_mse[]") + 48 for n in per), per
    # An uncut, unique slug stays readable, with no hash.
    alone = ground_truth_rows(["target_mse"], [Scored(INPUT, INPUT, INPUT, "make it red", "crop-0")], seed=0)
    assert {r.metric for r in alone} == {"target_mse", "target_mse[make-it-red]"}
