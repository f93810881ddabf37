"""Timing helpers: warm-up excluded, percentiles, stage split by hooks, generic callables, peak memory."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from imgx.metrics.timing import (
    Clock,
    StageTimer,
    latency_rows,
    peak_memory_mb,
    percentile,
    rows_from_samples,
    time_callable,
)


class Sleep(nn.Module):
    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds)
        return x


def test_warmup_is_excluded():
    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.05 if len(calls) == 1 else 0.002)  # a slow first call, like lazy init
        return len(calls)

    result = time_callable(fn, warmup=1, repeats=4)
    assert len(calls) == 5 and result.result == 5 and len(result.samples_ms) == 4
    assert max(result.samples_ms) < 40  # the slow first call is not among them
    assert result.p50 > 1.5
    assert result.p50 < 40


def test_percentile_matches_numpy():
    values = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0]
    assert percentile(values, 50) == pytest.approx(np.percentile(values, 50))
    assert percentile(values, 90) == pytest.approx(np.percentile(values, 90))
    assert np.isnan(percentile([], 50))


def test_clock_measures_wall_time():
    with Clock("cpu") as clock:
        time.sleep(0.02)
    assert 15 < clock.ms < 500


def test_stage_timer_splits_a_call():
    enc, loop, dec = Sleep(0.01), Sleep(0.005), Sleep(0.02)
    with StageTimer({"encode": [enc], "loop": [loop], "decode": [dec, None]}) as timer:
        for _ in range(2):
            timer.begin()
            x = enc(torch.zeros(1))
            for _ in range(3):
                x = loop(x)
                time.sleep(0.002)  # scheduler work between UNet calls belongs to the loop's span
            dec(x)
            stages = timer.end()
    assert set(stages) == {"encode", "loop", "decode"}
    assert 8 < timer.median("encode") < 100
    assert 3 * 5 + 2 * 2 <= timer.median("loop") < 200
    assert 18 < timer.median("decode") < 200
    assert timer.median("missing") is None
    # hooks are gone after the block: calls outside are not recorded
    enc(torch.zeros(1))
    assert len(timer.calls) == 2 and not enc._forward_hooks and not enc._forward_pre_hooks


def test_generic_latency_rows_for_any_callable():
    model = nn.Linear(8, 8)
    batch = torch.zeros(4, 8)
    rows = {r.metric: r for r in latency_rows(lambda: model(batch), warmup=1, repeats=5, items=4)}
    assert rows["latency_ms_p50"].value <= rows["latency_ms_p90"].value
    assert rows["latency_ms_p50"].n == 5
    ips = rows["images_per_second"].value
    assert ips > 0 and rows["peak_memory_mb"].value > 0


def test_rows_from_samples():
    rows = {r.metric: r for r in rows_from_samples([100.0, 200.0, 300.0], device="cpu", steps=10, denoise_ms=150.0,
                                                   stage_ms={"denoise": 150.0, "vae_decode": None})}
    assert rows["latency_ms_p50"].value == 200.0
    assert rows["images_per_second"].value == pytest.approx(3 / 0.6)
    assert rows["seconds_per_step"].value == pytest.approx(0.015)
    assert rows["latency_ms_vae_decode"].status == "unavailable" and rows["latency_ms_vae_decode"].value is None


def test_peak_memory_cpu_is_process_rss():
    mb, what = peak_memory_mb("cpu")
    assert mb > 10 and "RSS" in what
