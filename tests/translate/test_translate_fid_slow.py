"""The issue's targets, measured (slow: efficientnet-lite0 embeds every set at 224x224).

- CycleGAN on its suite's recipe (suites/cyclegan.yaml, ab), on three suite seeds: A->B FID at most half of
  ``untrained``'s, ``target_ssim`` above ``identity``'s, ``target_mse`` below it and both cycle errors below
  ``untrained``'s, asserted per seed. (A shorter CycleGAN recipe that no suite uses was checked here too, on weaker
  targets: dropped from the quality tier's budget, issue 26.)
- pix2pix ``l1+gan`` against ``l1`` alone, a short recipe: the paper's ablation says the GAN term lowers FID; both
  must beat ``untrained`` (asserted), the ordering is the goal (xfail with the figures when the data say otherwise,
  as the issue asks them reported).
"""

from __future__ import annotations

import pytest

from imgx.runner import run_suite
from tests.helpers import ROOT, write_suite

pytest.importorskip("efficientnet_lite_pytorch", reason="optional extra 'features' not installed")

SUITE = """
suite: translate-fid
seed: 0
defaults:
  task: translate
  cpu_threads: 1
  metrics: [fid, kid]
cases:
  - id: p2p
    model: {name: pix2pix, width: 8}
    data: {name: photo-pairs, pair: gray, image_size: 32, train: 512, test: 64}
    train: {epochs: 3, batch_size: 16, lr: 1.0e-3}
    sweep: {loss: [l1, l1+gan]}
"""


@pytest.mark.slow
def test_fid_targets(tmp_path):
    summary = run_suite(write_suite(tmp_path, SUITE), tmp_path / "run", quiet=True, report=False)
    fid = {}
    for record in summary.records:
        assert record["status"] == "ok", record["detail"]
        rows = {(r["metric"], r["reference"]): r for r in record["rows"]}
        fid[record["case_id"]] = {ref: rows[("fid", ref)]["value"] for ref in ("", "identity", "untrained")}
        assert "extractor=efficientnet-lite0" in rows[("fid", "")]["detail"]
        assert "not comparable to Inception FID" in rows[("fid", "")]["detail"]
    print("\nFID (efficientnet-lite0):", fid)
    for loss in ("l1", "l1+gan"):
        assert fid[f"p2p[loss={loss}]"][""] < fid[f"p2p[loss={loss}]"]["untrained"]
    if not fid["p2p[loss=l1+gan]"][""] < fid["p2p[loss=l1]"][""]:
        pytest.xfail(f"the paper's ordering not seen on this short recipe (reported as measured): FID l1+gan "
                     f"{fid['p2p[loss=l1+gan]']['']:.2f} >= l1 {fid['p2p[loss=l1]']['']:.2f}")


@pytest.mark.slow
# Seeds 1 and 2 were non-strict xfails until measured: both met the goals (XPASS) in two CI runs of session 9.
@pytest.mark.parametrize("suite_seed", [0, 1, 2])
def test_cyclegan_suite_meets_the_goals(tmp_path, suite_seed):
    """suites/cyclegan.yaml's photo -> sketch case as a user runs it (5 epochs, 2 residual blocks, about 3 min on 2
    cores), on each of three suite seeds (issue 27: the goals hold per seed, not on the mean)."""
    text = (ROOT / "suites" / "cyclegan.yaml").read_text(encoding="utf-8")
    assert "\nseed: 0\n" in text
    suite = write_suite(tmp_path, text.replace("\nseed: 0\n", f"\nseed: {suite_seed}\n"), "cyclegan.yaml")
    summary = run_suite(suite, tmp_path / "run", filters=["cyclegan-sketch-ab"], quiet=True, report=False)
    (record,) = summary.records
    assert record["status"] == "ok", record["detail"]
    v = {(r["metric"], r["reference"]): r["value"] for r in record["rows"] if r["status"] == "ok"}
    print(f"\nCycleGAN suite, ab, suite seed {suite_seed}:", {k: round(x, 4) for k, x in v.items()})
    assert v[("fid", "")] <= 0.5 * v[("fid", "untrained")]
    assert v[("target_ssim", "")] > v[("target_ssim", "identity")]
    assert v[("target_mse", "")] < v[("target_mse", "identity")]
    for name in ("cycle_mse_aba", "cycle_mse_bab"):
        assert v[(name, "")] < v[(name, "untrained")]
    assert [h["lr"] for h in record["history"]][-1] < 1e-6  # the paper's decay ran to its end
