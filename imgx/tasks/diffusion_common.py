"""What the diffusion tasks (``edit``, ``text-to-image``) share: seeds per image, timed calls, output checks.

A task module keeps only the steps of its own task (what it calls the pipeline with, which metrics it
computes); the pieces here are the same for every diffusers pipeline call:

* :func:`output_seed` — a 31-bit generator seed per output from the case seed and what identifies the output;
* :func:`timed_calls` — ``warmup`` untimed calls on the first item, one timed call per item (end to end, CUDA
  synchronised, split into stages by forward hooks), repeats topped up on the first item (output discarded);
* :func:`classify` / :func:`to_uint8` — invalid outputs (NaN, safety-checker hit, all black) and the exact
  uint8 conversion diffusers' ``numpy_to_pil`` uses;
* :func:`save_outputs` — every output saved as PNG (invalid ones too) with its ``outputs.csv`` row;
* :func:`invalid_verdict`, :func:`latency_metric_rows`, :func:`timing_info` — the case status, latency rows and
  provenance built the same way for every task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgx.suite.expand import stable_seed

BLACK_MAX = 3  # an output whose every uint8 channel value is <= 3 counts as all-black


def output_seed(case_seed: int, *parts: Any) -> int:
    """A 31-bit generator seed from the case seed and what identifies one output (stable when others are added)."""
    return stable_seed(case_seed, *parts)


def classify(image: np.ndarray, nsfw: bool | None) -> str:
    """Why an output is invalid (``nan``, ``safety``, ``black``) or ``""`` when it is valid.

    Args:
        image: ``(H, W, 3)`` float in ``[0, 1]`` as the pipeline returns with ``output_type="np"`` (NaN kept).
        nsfw: the safety checker's flag for this image (None when no checker ran).
    """
    if not np.isfinite(image).all():
        return "nan"  # typically float16 overflow in the VAE decoder
    if nsfw:
        return "safety"  # the pipeline has blacked it out
    if to_uint8(image).max() <= BLACK_MAX:
        return "black"
    return ""


def to_uint8(image: np.ndarray) -> np.ndarray:
    """``[0, 1]`` float → uint8 exactly as diffusers' ``numpy_to_pil`` (``round(x * 255)``); NaN → 0."""
    return (np.nan_to_num(image, nan=0.0) * 255).round().astype(np.uint8)


def stage_modules(pipe, *, image_encode: bool = True) -> dict[str, list]:
    """The modules of each stage of a Stable Diffusion pipeline call (``None`` entries are skipped).

    ``image_encode`` is the VAE encoder (InstructPix2Pix encodes its input image); text-to-image has no such stage.
    """
    vae = pipe.vae
    stages = {"text_encode": [pipe.text_encoder, getattr(pipe, "text_encoder_2", None)]}
    if image_encode:
        stages["image_encode"] = [vae.encoder, getattr(vae, "quant_conv", None)]
    stages["denoise"] = [pipe.unet]
    stages["vae_decode"] = [getattr(vae, "post_quant_conv", None), vae.decoder]
    return stages


@dataclass
class TimedCalls:
    """The outputs of :func:`timed_calls`: per item ``(item, image, nsfw)``, latencies and stage medians."""

    results: list[tuple[Any, np.ndarray, bool | None]]
    samples: list[float]
    stage_ms: dict[str, float | None]
    peak: tuple[float, str]
    warmup: int
    repeats: int
    extra: dict[str, Any] = field(default_factory=dict)


def timed_calls(items: Sequence[Any], call: Callable[[Any], Any], stages: dict[str, list], *, device: str,
                warmup: int, repeats: int, progress: Callable | None = None, desc: str = "",
                per_image: Callable[[Any, int], Any] | None = None,
                precomputed: Sequence[tuple[np.ndarray, bool | None]] | None = None) -> TimedCalls:
    """Call ``call(item)`` for every item, timed, after ``warmup`` untimed calls on the first item.

    ``call`` returns a diffusers pipeline output (``.images`` ``(B, H, W, 3)`` float, ``.nsfw_content_detected``).
    With fewer items than ``repeats`` the first item is called again (timed, output discarded) until there are.
    Without ``per_image`` each call gives one result (its first image); with it, a call of ``B`` images gives
    ``B`` results, ``(per_image(item, j), image j, flag j)``. With ``precomputed`` (one ``(image, nsfw)`` per item,
    e.g. from a batched sweep; one per image with ``per_image``) no item is called for its output: only the
    ``warmup`` and ``repeats`` calls of the first item run, timed, so latency keeps meaning one call.
    """
    from imgx.ab import serve as ab_serve
    from imgx.metrics.timing import Clock, StageTimer, peak_memory_mb, reset_peak_memory

    for _ in range(warmup):
        call(items[0])
    if repeats:
        ab_serve(lambda: call(items[0]), device)
    reset_peak_memory(device)
    samples: list[float] = []
    results: list[tuple[Any, np.ndarray, bool | None]] = []
    with StageTimer(stages, device) as timer:

        def timed(item):
            timer.begin()
            with Clock(device) as clock:
                out = call(item)
            timer.end()
            samples.append(clock.ms)
            return out

        if precomputed is not None:
            if per_image:  # one precomputed output per image; items are sequences of their images' specs
                made = iter(precomputed)
                results = [(per_image(item, j), *next(made)) for item in items for j in range(len(item))]
            else:
                results = [(item, image, nsfw) for item, (image, nsfw) in zip(items, precomputed, strict=True)]
        else:
            for item in (progress(items, desc=desc[:40], unit="img") if progress else items):
                out = timed(item)
                flags = getattr(out, "nsfw_content_detected", None)
                for j in range(len(out.images) if per_image else 1):
                    results.append((per_image(item, j) if per_image else item, out.images[j],
                                    None if flags is None else bool(flags[j])))
        while len(samples) < repeats:
            timed(items[0])
    peak = peak_memory_mb(device)
    return TimedCalls(results, samples, {s: timer.median(s) for s in stages}, peak, warmup, repeats)


def save_outputs(ctx, case_id: str, timed: TimedCalls, describe: Callable[[Any], tuple[list[Any], dict[str, Any]]]
                 ) -> tuple[list[dict[str, Any]], list[np.ndarray], list[int], dict[str, int]]:
    """Check, convert and save every output (invalid ones too, so that they can be looked at).

    Args:
        describe: item → (file-name parts, the item's ``outputs.csv`` fields); ``path``, ``valid`` and
            ``invalid_reason`` are added here.

    Returns:
        ``(outputs rows, uint8 arrays, indices of valid outputs, invalid reason → count)``.
    """
    outputs, arrays, valid, invalid = [], [], [], {}
    for k, (item, image, nsfw) in enumerate(timed.results):
        reason = classify(image, nsfw)
        arr = to_uint8(image)
        arrays.append(arr)
        parts, row = describe(item)
        path = ctx.save_image(arr, case_id, *parts, k)
        outputs.append({**row, "path": path, "valid": not reason, "invalid_reason": reason})
        if reason:
            invalid[reason] = invalid.get(reason, 0) + 1
        else:
            valid.append(k)
    return outputs, arrays, valid, invalid


def invalid_verdict(invalid: dict[str, int], total: int, max_invalid: int) -> tuple[str, str]:
    """The case ``(status, detail)``: failed past ``max_invalid`` invalid outputs, ok (with a note) below."""
    n_invalid = sum(invalid.values())
    if n_invalid > max_invalid:
        what = ", ".join(f"{v} {k}" for k, v in sorted(invalid.items()))
        return "failed", f"{n_invalid} of {total} outputs invalid ({what}); max_invalid is {max_invalid}"
    if n_invalid:
        return "ok", f"{n_invalid} of {total} outputs invalid (tolerated by max_invalid {max_invalid})"
    return "ok", ""


def latency_metric_rows(timed: TimedCalls, *, device: str, steps: int, images_per_call: int = 1) -> list:
    """p50/p90, images/s, seconds per step, per-stage medians and peak memory from :func:`timed_calls`."""
    from imgx.metrics.timing import rows_from_samples

    return rows_from_samples(timed.samples, device=device, images_per_call=images_per_call, steps=steps,
                             denoise_ms=timed.stage_ms.get("denoise"), stage_ms=timed.stage_ms, peak=timed.peak)


def timing_info(timed: TimedCalls, device: str) -> dict[str, Any]:
    """The ``info.timing`` provenance of the timed calls."""
    return {"warmup_calls": timed.warmup, "timed_calls": len(timed.samples), "repeats": timed.repeats,
            "stage_split": "forward hooks; a stage spans its first module call to its last",
            "cuda_synchronized": str(device).startswith("cuda")}
