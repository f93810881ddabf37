"""Honest latency: warm-up excluded, CUDA synchronised, percentiles over repeats, per-stage splits, peak memory.

Generic pieces (:class:`Clock`, :func:`time_callable`, :func:`latency_rows` for any callable,
:func:`rows_from_samples`, peak memory) serve any task;
:class:`StageTimer` splits a call into stages with forward hooks on the modules of each stage (used for the
diffusion pipeline's text encoder, VAE encoder, UNet and VAE decoder). On CUDA, stage boundaries are CUDA
events (no synchronisation inside the call, so the split does not slow the call it measures); totals are
taken after ``torch.cuda.synchronize``.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgx.ab import serve as ab_serve  # under `imgx ab`, the timed callable is also timed in paired blocks
from imgx.results import MetricRow

STAGES = ("text_encode", "image_encode", "denoise", "vae_decode")


def _is_cuda(device: str) -> bool:
    return str(device).startswith("cuda")


def synchronize(device: str) -> None:
    """Wait for queued GPU work on ``device`` (a no-op on CPU)."""
    if _is_cuda(device):
        import torch

        torch.cuda.synchronize(device)


class Clock:
    """Wall-clock milliseconds of a region, synchronising CUDA before start and stop."""

    def __init__(self, device: str = "cpu"):
        self.device = str(device)
        self.ms: float | None = None
        self._t0 = 0.0

    def __enter__(self) -> Clock:
        synchronize(self.device)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.ms = (time.perf_counter() - self._t0) * 1000.0


@dataclass
class TimingResult:
    """Latency samples of a callable, in milliseconds, warm-up excluded."""

    samples_ms: list[float]
    warmup: int
    device: str
    result: Any = None

    @property
    def p50(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p90(self) -> float:
        return percentile(self.samples_ms, 90)


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (linear interpolation, NumPy's default) of the values."""
    x = np.asarray(list(values), dtype=np.float64)
    if x.size == 0:
        return float("nan")
    return float(np.percentile(x, q))


def time_callable(fn: Callable[..., Any], *args: Any, warmup: int = 1, repeats: int = 3, device: str = "cpu",
                  **kwargs: Any) -> TimingResult:
    """Call ``fn(*args, **kwargs)`` ``warmup`` times untimed, then ``repeats`` times timed.

    Returns:
        the samples (ms) and the last call's return value.
    """
    result = None
    for _ in range(warmup):
        result = fn(*args, **kwargs)
    ab_serve(lambda: fn(*args, **kwargs), device)
    samples = []
    for _ in range(repeats):
        with Clock(device) as clock:
            result = fn(*args, **kwargs)
        samples.append(clock.ms)
    return TimingResult(samples, warmup, str(device), result)


def reset_peak_memory(device: str) -> None:
    """Start a fresh CUDA peak-memory window (CPU peak RSS cannot be reset; see :func:`peak_memory_mb`)."""
    if _is_cuda(device):
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: str) -> tuple[float, str]:
    """Peak memory in MB and what it measures.

    CUDA: ``torch.cuda.max_memory_allocated`` since the last :func:`reset_peak_memory` (tensors only, not the
    allocator's cache). CPU: the process's peak resident set size since it started, which includes earlier
    cases and the libraries; compare CPU figures only between runs of the same suite.
    """
    if _is_cuda(device):
        import torch

        return torch.cuda.max_memory_allocated(device) / 2**20, "CUDA max_memory_allocated since the timed calls began"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mb = rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux
    return mb, "process peak RSS since process start (includes earlier work)"


@dataclass
class _Call:
    marks: dict[str, list] = field(default_factory=dict)  # stage -> [first start, last end]


class StageTimer:
    """Split calls into stages with forward hooks on the modules of each stage.

    A stage's time within one call is the span from the first forward of any of its modules to the end of the
    last one (so ``denoise`` includes the scheduler steps between UNet calls). Use as a context manager around
    a series of calls, each bracketed by :meth:`begin` and :meth:`end`; hooks are removed on exit.

    Args:
        stages: stage name -> modules (``None`` entries are ignored, e.g. a VAE without ``quant_conv``).
        device: where the modules run; CUDA uses events recorded in the hooks.
    """

    def __init__(self, stages: Mapping[str, Iterable[Any]], device: str = "cpu"):
        self.stages = {name: [m for m in mods if m is not None] for name, mods in stages.items()}
        self.device = str(device)
        self.calls: list[dict[str, float]] = []
        self._handles: list[Any] = []
        self._current: _Call | None = None

    def _mark(self):
        if _is_cuda(self.device):
            import torch

            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _pre(self, stage: str):
        def hook(module, args):
            if self._current is not None:
                span = self._current.marks.setdefault(stage, [None, None])
                if span[0] is None:
                    span[0] = self._mark()
        return hook

    def _post(self, stage: str):
        def hook(module, args, output):
            if self._current is not None:
                self._current.marks.setdefault(stage, [None, None])[1] = self._mark()
        return hook

    def __enter__(self) -> StageTimer:
        for stage, modules in self.stages.items():
            for module in modules:
                self._handles.append(module.register_forward_pre_hook(self._pre(stage)))
                self._handles.append(module.register_forward_hook(self._post(stage)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._current = None

    def begin(self) -> None:
        """Start recording one call."""
        self._current = _Call()

    def end(self) -> dict[str, float]:
        """Finish the call (synchronising CUDA) and return its stage times in ms."""
        call, self._current = self._current, None
        if call is None:
            return {}
        if _is_cuda(self.device):
            synchronize(self.device)
        out = {}
        for stage, (start, stop) in call.marks.items():
            if start is None or stop is None:
                continue
            out[stage] = start.elapsed_time(stop) if _is_cuda(self.device) else (stop - start) * 1000.0
        self.calls.append(out)
        return out

    def median(self, stage: str) -> float | None:
        """Median time (ms) of a stage over the recorded calls, or None if it never ran."""
        values = [c[stage] for c in self.calls if stage in c]
        return percentile(values, 50) if values else None


def latency_rows(fn: Callable[[], Any], *, device: str = "cpu", warmup: int = 2, repeats: int = 20,
                 items: int = 1) -> list[MetricRow]:
    """Time any zero-argument callable and return its latency rows (p50, p90, images/s, peak memory).

    Args:
        fn: the work to time, e.g. ``lambda: model(batch)``; run under ``torch.inference_mode``.
        device: where it runs (CUDA is synchronised around every call).
        warmup: untimed calls first (allocations, cuDNN autotuning, lazy init).
        repeats: timed calls.
        items: images each call processes (for ``images_per_second``).
    """
    import torch

    reset_peak_memory(device)
    with torch.inference_mode():
        timing = time_callable(fn, warmup=warmup, repeats=repeats, device=device)
    return rows_from_samples(timing.samples_ms, device=device, images_per_call=items, peak=peak_memory_mb(device))


def rows_from_samples(samples_ms: list[float], *, device: str, images_per_call: int = 1, steps: int | None = None,
                      stage_ms: Mapping[str, float | None] | None = None, denoise_ms: float | None = None,
                      peak: tuple[float, str] | None = None) -> list[MetricRow]:
    """Metric rows for a list of per-call latencies (warm-up already excluded).

    Args:
        samples_ms: one wall-clock latency per call, ms.
        device: for the detail text.
        images_per_call: images each call produces (for ``images_per_second``).
        steps: denoising steps per call; with ``denoise_ms`` gives ``seconds_per_step``.
        stage_ms: stage -> median ms, written as ``latency_ms_<stage>`` rows.
        denoise_ms: median denoising-loop time per call, ms.
        peak: ``(MB, what it measures)`` from :func:`peak_memory_mb`.
    """
    n = len(samples_ms)
    detail = f"{n} timed calls after warm-up on {device}"
    # The samples travel with the median: a comparison judges a change against the spread of both runs.
    rows = [MetricRow("latency_ms_p50", percentile(samples_ms, 50), "ms", n=n, detail=detail,
                      samples=[round(float(x), 4) for x in samples_ms]),
            MetricRow("latency_ms_p90", percentile(samples_ms, 90), "ms", n=n, detail=detail)]
    total_s = sum(samples_ms) / 1000.0
    if total_s > 0:
        rows.append(MetricRow("images_per_second", n * images_per_call / total_s, "img/s", n=n,
                              detail=f"{n * images_per_call} images in {total_s:.3f} s of timed calls"))
    if steps and denoise_ms is not None:
        rows.append(MetricRow("seconds_per_step", denoise_ms / 1000.0 / steps, "s", n=n,
                              detail=f"median denoising loop / {steps} requested steps"))
    for stage, value in (stage_ms or {}).items():
        if value is None:
            rows.append(MetricRow(f"latency_ms_{stage}", None, "ms", status="unavailable",
                                  detail=f"stage {stage!r} did not run in the timed calls"))
        else:
            rows.append(MetricRow(f"latency_ms_{stage}", value, "ms", n=n, detail="median over timed calls"))
    if peak is not None:
        rows.append(MetricRow("peak_memory_mb", peak[0], "MB", detail=peak[1]))
    return rows
