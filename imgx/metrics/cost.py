"""Deterministic cost rows of one real call: forward FLOPs, parameters, model evaluations, CUDA peak allocation.

Counts, not timings: the same code gives the same numbers on a quiet laptop and on a loaded CI runner, so
``compare`` gates them exactly (metric kind ``cost``). Every task calls :func:`case_cost_rows` with the callable
it times (``lambda: model(batch)``, ``lambda: pipe(...)``) and the modules that callable runs; nothing here
knows a task.

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` (matmul, convolution, attention and
the other ops it has formulas for, 2 per multiply-add; element-wise ops count 0). A part's FLOPs (UNet, VAE,
text encoder) are the counter's total advanced between the part's forward pre-hook and forward hook.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from imgx.results import MetricRow

COST_METRICS = ("flops_per_image", "parameters", "model_evaluations_per_image", "cuda_peak_allocated_mb")
COUNTER = "torch.utils.flop_counter.FlopCounterMode"


def wants_cost(metrics: Iterable[str]) -> bool:
    """Cost rows come with ``latency`` and with ``cost`` (cost alone: counts without timing)."""
    return bool({"latency", "cost"} & set(metrics))


def diffusion_parts(pipe) -> dict[str, list]:
    """The parts of a diffusers pipeline whose FLOPs are reported separately: UNet, VAE, text encoder(s)."""
    vae = pipe.vae  # pipelines call vae.encode / vae.decode, never vae.forward: hook the submodules they run
    return {"unet": [pipe.unet],
            "vae": [vae.encoder, getattr(vae, "quant_conv", None), getattr(vae, "post_quant_conv", None), vae.decoder],
            "text_encoder": [getattr(pipe, "text_encoder", None), getattr(pipe, "text_encoder_2", None)]}


def count_parameters(modules: Iterable[Any]) -> int:
    """Parameters of the modules, each tensor counted once (shared weights, tied embeddings)."""
    seen: dict[int, int] = {}
    for module in modules:
        if module is None:
            continue
        for p in module.parameters():
            seen[id(p)] = p.numel()
    return sum(seen.values())


def _rows_in(args: tuple, kwargs: dict) -> int:
    """Batch rows of a forward call: the first dimension of its first tensor argument (``sample`` for a UNet)."""
    import torch

    for value in (kwargs.get("sample"), *args, *kwargs.values()):
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
    return 0


def measure_cost(fn: Callable[[], Any], *, parts: Mapping[str, Iterable[Any]], images: int, device: str = "cpu",
                 evaluated: Any = None) -> tuple[Any, list[MetricRow]]:
    """Run ``fn()`` once under a FLOP counter and return its output and the cost rows.

    Args:
        fn: one real call, e.g. ``lambda: model(batch)``; run under ``torch.inference_mode``.
        parts: part name -> the modules it consists of (``None`` entries ignored). With more than one part,
            each gets a ``flops_per_image[<part>]`` row; every part's parameters are counted.
        images: images the call produces (FLOPs and evaluations are divided by it).
        device: where the call runs; on CUDA a ``cuda_peak_allocated_mb`` row is added.
        evaluated: the module whose forward batch rows count as model evaluations (the UNet of a diffusion
            pipeline); ``None``: no ``model_evaluations_per_image`` row.

    Returns:
        ``(fn's output, rows)`` with rows ``flops_per_image`` (+ per part), ``parameters``,
        ``model_evaluations_per_image`` and ``cuda_peak_allocated_mb`` where they apply.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from imgx.metrics.timing import _is_cuda, synchronize

    parts = {name: [m for m in mods if m is not None] for name, mods in parts.items()}
    part_flops = dict.fromkeys(parts, 0)
    rows_run = [0]
    counter = FlopCounterMode(display=False)
    handles = []
    active: dict[int, int] = {}  # id(module) -> counter total at its pre-hook (a module re-entered counts once)

    def pre(name, module):
        def hook(_module, _args):
            active.setdefault(id(module), counter.get_total_flops())
        return hook

    def post(name, module):
        def hook(_module, _args, _out):
            start = active.pop(id(module), None)
            if start is not None:
                part_flops[name] += counter.get_total_flops() - start
        return hook

    for name, modules in parts.items():
        for module in modules:
            handles.append(module.register_forward_pre_hook(pre(name, module)))
            handles.append(module.register_forward_hook(post(name, module)))
    if evaluated is not None:
        handles.append(evaluated.register_forward_pre_hook(
            lambda _m, args, kwargs: rows_run.__setitem__(0, rows_run[0] + _rows_in(args, kwargs)), with_kwargs=True))
    cuda = _is_cuda(device)
    try:
        if cuda:
            synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
        with torch.inference_mode(), counter:
            out = fn()
        if cuda:
            synchronize(device)
            peak = torch.cuda.max_memory_allocated(device)
    finally:
        for h in handles:
            h.remove()
    n = max(int(images), 1)
    total = counter.get_total_flops()
    detail = f"forward FLOPs of one call of {n} image(s), counted by {COUNTER} (2 per multiply-add)"
    rows = [MetricRow("flops_per_image", total / n, "FLOP", n=n, detail=detail)]
    if len(parts) > 1:
        rows += [MetricRow(f"flops_per_image[{name}]", flops / n, "FLOP", n=n, detail=detail)
                 for name, flops in part_flops.items() if parts[name]]
    modules = [m for mods in parts.values() for m in mods]
    rows.append(MetricRow("parameters", count_parameters(modules), "", detail=f"parameters of {', '.join(parts)}"))
    if evaluated is not None:
        rows.append(MetricRow("model_evaluations_per_image", rows_run[0] / n, "", n=n,
                              detail="UNet batch rows run per image in one call (guidance branches count)"))
    if cuda:
        rows.append(MetricRow("cuda_peak_allocated_mb", (peak - before) / 2**20, "MB", n=n,
                              detail="torch.cuda.max_memory_allocated during one call, over what was allocated "
                                     "before it"))
    return out, rows


def case_cost_rows(case, fn: Callable[[], Any], parts: Mapping[str, Iterable[Any]], *, images: int,
                   evaluated: Any = None) -> list[MetricRow]:
    """The cost rows of a case whose metrics ask for ``latency`` or ``cost`` (else ``[]``); see :func:`measure_cost`.

    A call that raises gives ``failed`` cost rows with the reason, not a failed case.
    """
    if not wants_cost(case.spec.metrics):
        return []
    try:
        return measure_cost(fn, parts=parts, images=images, device=case.device, evaluated=evaluated)[1]
    except Exception as exc:  # noqa: BLE001 - a counter limitation must not lose the case's other rows
        return [MetricRow("flops_per_image", None, "FLOP", status="failed", detail=f"{type(exc).__name__}: {exc}")]


def diffusion_cost_rows(case, pipe, fn: Callable[[], Any], *, images: int,
                        sweep_info: Mapping[str, Any] | None = None) -> list[MetricRow]:
    """:func:`case_cost_rows` of one bare pipeline call, split into UNet, VAE and text encoder.

    When the case's outputs came from batched sweep loops (``sweep_info`` with ``unet_rows`` and ``images``, see
    :mod:`imgx.diffusion.batched`), ``model_evaluations_per_image`` is what those loops ran per image instead:
    the work the case's outputs actually cost.
    """
    rows = case_cost_rows(case, fn, diffusion_parts(pipe), images=images, evaluated=pipe.unet)
    if sweep_info and sweep_info.get("unet_rows") and sweep_info.get("images"):
        for row in rows:
            if row.metric == "model_evaluations_per_image":
                bare, row.value, row.n = row.value, sweep_info["unet_rows"] / sweep_info["images"], sweep_info["images"]
                row.detail = (f"UNet batch rows the batched sweep loops ran per image ({sweep_info['unet_rows']} rows "
                              f"for {sweep_info['images']} images of the group); one bare call runs {bare:g}")
    return rows
