"""Guidance sweeps batched across cases: the first case of a group computes the outputs of the whole group.

Cases of one suite entry that differ only in ``guidance_scale`` / ``image_guidance_scale`` (same weights, dtype,
device, data, prompts, seed, scheduler, steps, settings) form a group. When the first of them runs, the
outputs of every case of the group this process still has to run (``RunContext.plan``; cases reused from the
ledger are not recomputed) are made by :func:`imgx.diffusion.batched.denoise_points` and kept in
``ctx.resources`` until their case runs and takes them. A case alone in its group runs as before (one pipeline
call per output), so its outputs stay bit-identical to bare diffusers calls. ``inference.batch_sweep: false``
turns this off.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgx.results import MetricRow

RESOURCE = "batched-sweep"
GUIDANCE = ("guidance_scale", "image_guidance_scale")


@dataclass
class SweepOutputs:
    """One case's outputs from batched loops, in the order of its pairs, and how they were made."""

    images: list[np.ndarray]
    nsfw: list[bool | None]
    batch_points: list[int]
    info: dict[str, Any] = field(default_factory=dict)
    halvings: list[str] = field(default_factory=list)

    def rows(self) -> list[MetricRow]:
        """``sweep_images_per_second`` of the group's loops, with batch sizes and peak memory in the detail."""
        info = self.info
        peak = info.get("peak_memory_mb")
        detail = (f"batched sweep: {info['images']} images of {info['cases']} cases in loops of "
                  f"{', '.join(map(str, info['loops']))} points (max_batch {info['max_batch']}: "
                  f"{info.get('max_batch_why', 'inference.max_batch')}), "
                  f"{info['seconds']:.3g} s including encodings and decoding")
        if info.get("bare_unet_rows"):
            detail += (f"; UNet rows {info['unet_rows']} where one call per point runs {info['bare_unet_rows']} "
                       "(rows with equal inputs run once)")
        if peak is not None:
            detail += f"; peak memory of the batched loops {peak:.1f} MB ({info['peak_memory_what']})"
        if info.get("memory_growth_mb") is not None:
            detail += f", {info['memory_growth_mb']:.1f} MB over the memory allocated when they began"
        if self.halvings:
            detail += "; " + "; ".join(self.halvings)
        return [MetricRow("sweep_images_per_second", info["images_per_second"], "img/s", n=info["images"],
                          detail=detail)]


def record(sweep: SweepOutputs | None, rows: list[MetricRow], info: dict[str, Any], detail: str) -> str:
    """Add a batched sweep's row and provenance to a finished case; returns ``detail`` with any out-of-memory
    halvings appended (unchanged when the case ran one pipeline call per output)."""
    if sweep is None:
        return detail
    rows += sweep.rows()
    info["batched_sweep"] = sweep.info
    return "; ".join(filter(None, [detail, *sweep.halvings]))


def group_key(case) -> str:
    """What a case shares with the other points of its group: everything but the guidance scales."""
    config = copy.deepcopy(case.config)
    for name in GUIDANCE:
        config.get("inference", {}).pop(name, None)
    return json.dumps({"base": case.base_id, "task": case.task, "seed": case.seed, "config": config},
                      sort_keys=True, default=str)


def _state(ctx) -> dict[str, Any]:
    return ctx.resources.setdefault(RESOURCE, {"outputs": {}, "done": set()})


def pending_group(case, ctx) -> list:
    """The case and the later cases of its group this process has still to run, in plan order."""
    done = _state(ctx)["done"]
    key = group_key(case)
    group = [c for c in getattr(ctx, "plan", []) if c.key not in done and c.key != case.key and group_key(c) == key]
    return [case, *group]


def outputs_for(case, ctx, compute) -> SweepOutputs | None:
    """This case's batched outputs: precomputed by an earlier case of its group, or computed now for the group.

    Args:
        case: the case being run.
        ctx: the run context (``plan`` and ``resources``).
        compute: ``compute(group) -> {case key: SweepOutputs}`` for a list of cases.

    Returns:
        None when batching is off or the case is alone in its group (the task then calls the pipeline per
        output as before).
    """
    state = _state(ctx)
    ready = state["outputs"].pop(case.key, None)
    state["done"].add(case.key)
    if ready is not None or not case.spec.inference.batch_sweep:
        return ready
    group = pending_group(case, ctx)
    if len(group) < 2:
        return None
    made = compute(group)
    state["outputs"].update({k: v for k, v in made.items() if k != case.key})
    return made[case.key]


def edit_outputs(case, ctx, loaded, images: list, pairs: list) -> SweepOutputs | None:
    """:func:`outputs_for` for the ``edit`` task: every case of the group with every (input, prompt) pair."""

    def compute(group: list) -> dict[str, SweepOutputs]:
        from imgx.diffusion.batched import Pix2PixBranches, Point, choose_max_batch, denoise_points

        inf = case.spec.inference
        points = [Point(p.prompt, p.seed, c.spec.inference.guidance_scale, c.spec.inference.image_guidance_scale,
                        images[p.index], p.index) for c in group for p in pairs]
        width, height = images[0].size
        size = choose_max_batch(inf.max_batch, loaded.pipe, case.device, height, width, Pix2PixBranches)
        made = denoise_points(loaded.pipe, points, num_inference_steps=inf.num_inference_steps,
                              branches=Pix2PixBranches, max_batch=size.points,
                              progress=lambda it: ctx.progress(it, desc=f"{case.base_id[:30]} batched", unit="step"))
        return split(group, len(pairs), made, size)

    return outputs_for(case, ctx, compute)


def text_to_image_outputs(case, ctx, loaded, calls: list, size: int | None) -> SweepOutputs | None:
    """:func:`outputs_for` for the ``text-to-image`` task: every image of every call of every case of the group.

    Each image is its own point (its own generator, as a bare call with a list of generators draws it). Without
    ``max_batch`` a loop holds at least one bare call's images (``samples``), so batching never runs the UNet on
    smaller batches than the calls it replaces.
    """

    def compute(group: list) -> dict[str, SweepOutputs]:
        from imgx.diffusion.batched import BatchSize, Point, TextToImageBranches, choose_max_batch, denoise_points

        inf, pipe = case.spec.inference, loaded.pipe
        samples = [s for call in calls for s in call]
        points = [Point(s.prompt, s.seed, c.spec.inference.guidance_scale) for c in group for s in samples]
        side = size or pipe.unet.config.sample_size * pipe.vae_scale_factor
        per_call = max(len(call) for call in calls)
        batch = choose_max_batch(inf.max_batch, pipe, case.device, side, side, TextToImageBranches)
        if not inf.max_batch and batch.points < per_call:
            batch = BatchSize(per_call, f"the images of one call ({batch.why} gave {batch.points})", batch.budget_mb)
        made = denoise_points(pipe, points, num_inference_steps=inf.num_inference_steps,
                              branches=TextToImageBranches, max_batch=batch.points, height=size, width=size,
                              progress=lambda it: ctx.progress(it, desc=f"{case.base_id[:30]} batched", unit="step"))
        return split(group, len(samples), made, batch)

    return outputs_for(case, ctx, compute)


def split(group: list, per_case: int, made, batch) -> dict[str, SweepOutputs]:
    """Cut :func:`~imgx.diffusion.batched.denoise_points` results into per-case outputs (case-major order)."""
    peak, what = made.peak_memory_mb if made.peak_memory_mb else (None, "")
    info = {"cases": len(group), "images": len(made.images), "seconds": made.seconds, "loops": made.loops,
            "max_batch": batch.points, "max_batch_why": batch.why, "memory_budget_mb": batch.budget_mb,
            "memory_growth_mb": made.memory_growth_mb,
            "images_per_second": len(made.images) / max(made.seconds, 1e-9),
            "peak_memory_mb": peak, "peak_memory_what": what, "group": [c.id for c in group],
            "halvings": made.halvings, "unet_rows": made.unet_rows, "bare_unet_rows": made.bare_unet_rows}
    out = {}
    for j, c in enumerate(group):
        sl = slice(j * per_case, (j + 1) * per_case)
        out[c.key] = SweepOutputs(made.images[sl], made.nsfw[sl], made.batch_points[sl], info, made.halvings)
    return out
