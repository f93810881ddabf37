"""The machine probe: a fixed workload timed between a case's calls tells a slower machine from slower code."""

from __future__ import annotations

import pytest

from imgx.compare import Measurement, compare_measurements, compare_runs
from imgx.metrics.timing import latency_rows, rows_from_samples


def _row(b: float, c: float, probes: tuple[float, float] | None, metric: str = "latency_ms_p50"):
    machine = None if probes is None else (Measurement(probes[0], "ms"), Measurement(probes[1], "ms"))
    return compare_measurements("edit", metric, "", Measurement(b, "ms"), Measurement(c, "ms"), tolerance="10%",
                                machine=machine)


def test_a_uniformly_slower_machine_is_inconclusive_not_a_regression():
    row = _row(100.0, 140.0, (6.0, 8.4))  # the probe took 1.4x as long too
    assert row.verdict == "inconclusive"
    assert row.detail.startswith("inconclusive: the machine, not the code")
    assert "1.40x the baseline's time" in row.detail and "+0.0%" in row.detail


def test_slower_code_on_a_steady_machine_is_a_regression():
    assert _row(100.0, 140.0, (6.0, 6.1)).verdict == "regression"  # the probe moved 1.7%, inside the tolerance
    assert _row(100.0, 140.0, None).verdict == "regression"  # runs recorded before the probe: as before


def test_slower_code_on_a_slower_machine_is_still_a_regression():
    row = _row(100.0, 200.0, (6.0, 8.4))
    assert row.verdict == "regression"
    assert "scaled by it the change is still +42.9%" in row.detail


def test_a_faster_machine_hiding_slower_code_is_inconclusive():
    row = _row(100.0, 100.0, (6.0, 3.6))  # the machine took 0.6x as long; the code did not get faster with it
    assert row.verdict == "inconclusive"
    assert "+66.7%" in row.detail and "(regression)" in row.detail


def test_throughput_scales_the_other_way():
    row = _row(10.0, 7.2, (6.0, 8.4), metric="images_per_second")  # 1.4x slower machine: 7.2 img/s is 10.08
    assert row.verdict == "inconclusive"
    assert _row(10.0, 7.2, (6.0, 6.0), metric="images_per_second").verdict == "regression"


def test_latency_rows_carry_the_probe_taken_between_the_calls():
    import torch

    a = torch.randn(128, 128)
    rows = {r.metric: r for r in latency_rows(lambda: a @ a, warmup=1, repeats=7)}
    probe = rows["machine_probe_ms"]
    assert probe.n == 7 and len(probe.samples) == 7 and probe.value > 0
    assert "timed after each call, outside its timing" in probe.detail
    assert rows["latency_ms_p50"].n == 7


def test_run_directories_compare_with_their_probes(run_factory):
    """Two ledgers whose latency moved 1.5x with their probe: no regression; a third whose probe did not move: one."""
    base = [100.0 + k for k in range(9)]
    runs = {}
    for name, scale, probe_scale in (("b", 1.0, 1.0), ("slow-machine", 1.5, 1.5), ("slow-code", 1.5, 1.0)):
        rows = rows_from_samples([x * scale for x in base], device="cpu",
                                 probe_ms=[6.0 * probe_scale + 0.01 * k for k in range(9)])
        runs[name] = run_factory(name, [{"id": "edit", "rows": [
            {"metric": r.metric, "value": r.value, "unit": r.unit, "n": r.n, "samples": r.samples} for r in rows]}])
    machine = compare_runs(runs["b"], runs["slow-machine"])
    verdicts = {r.metric: r.verdict for r in machine.rows}
    assert verdicts["latency_ms_p50"] == "inconclusive" and machine.exit_code == 0
    assert verdicts["machine_probe_ms"] == "not-compared"  # reported beside the timings, never gated itself
    code = compare_runs(runs["b"], runs["slow-code"])
    assert {r.metric: r.verdict for r in code.rows}["latency_ms_p50"] == "regression" and code.exit_code == 1


@pytest.mark.parametrize("device", ["cpu"])
def test_probe_samples_are_steady_on_an_idle_call(device):
    """The probe's own spread is small beside the 10% timing tolerance (its median is what is compared)."""
    from imgx.metrics.machine_probe import MachineProbe

    probe = MachineProbe(device)
    for _ in range(15):
        probe()
    assert 0.1 < probe.median_ms < 1000
    assert len(probe.samples) == 15
