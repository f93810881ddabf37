"""``edit`` and ``text-to-image`` cases whose model is a callable (:class:`~imgx.models.protocol.EditModel`,
:class:`~imgx.models.protocol.TextToImageModel`) rather than a diffusers pipeline loaded by imgx.

The callable gets the case's inputs by keyword (``images`` as PIL RGB, ``instructions`` / ``prompts``, one
``seeds`` entry per output) and the ``inference:`` settings (swept or not) its signature accepts; it returns one
image per output: a PIL image or an ``(H, W, 3)`` array, uint8 or float in ``[0, 1]``. Outputs, their checks
(NaN and all-black are invalid), ``outputs.csv`` rows, latency and every metric are the task's own code: only
the call differs. One call per output (a batch of one), timed like a pipeline call.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from imgx.models.protocol import (
    CALL_INPUTS,
    INFERENCE_SETTINGS,
    ModelError,
    accepted_names,
    build,
    call_signature,
    model_kwargs,
    origin,
    settings_for,
)
from imgx.results import CaseResult, MetricRow


def load(case: Any, task: str) -> tuple[Any, dict[str, Any]]:
    """The case's callable and the keyword arguments of every call (settings it accepts, and ``model:`` keys when
    the suite names the callable itself rather than a factory)."""
    from imgx.models import MODELS
    from imgx.models.protocol import is_task_callable

    target = MODELS.resolve(case.spec.model.name)
    fn = build(case, task)
    signature = call_signature(target, task) or fn
    accepted = accepted_names(signature)
    refused = [axis for axis in case.params if axis in INFERENCE_SETTINGS[task] and accepted is not None
               and axis not in accepted]
    if refused:  # a factory's callable is known only once built; a class's or a function's was checked before the run
        raise ModelError(f"model {origin(case.spec.model.name)} does not accept sweep axis {refused[0]!r}; it accepts "
                         f"{', '.join(a for a in accepted if a not in CALL_INPUTS[task]) or 'no keyword'}")
    kwargs = settings_for(case, signature, task)
    if is_task_callable(target, task):
        kwargs.update(model_kwargs(case.spec.model))
    return fn, kwargs


def as_image(out: Any, name: str) -> np.ndarray:
    """One returned image as ``(H, W, 3)`` float in ``[0, 1]`` (NaN kept, for the invalid-output check)."""
    from PIL import Image

    if isinstance(out, Image.Image):
        return np.asarray(out.convert("RGB"), dtype=np.float64) / 255.0
    if not isinstance(out, np.ndarray):
        raise ModelError(f"model {origin(name)} returned a {type(out).__name__} image; expected a PIL image or an "
                         "(H, W, 3) numpy array")
    if out.ndim != 3 or out.shape[-1] != 3 or not out.shape[0] or not out.shape[1]:
        raise ModelError(f"model {origin(name)} returned an image of shape {out.shape}; expected (H, W, 3)")
    if out.dtype == np.uint8:
        return out.astype(np.float64) / 255.0
    if not np.issubdtype(out.dtype, np.floating):
        raise ModelError(f"model {origin(name)} returned an image of dtype {out.dtype}; expected uint8 or float in "
                         "[0, 1]")
    return out.astype(np.float64)


def _caller(fn: Any, kwargs: dict[str, Any], task: str, name: str):
    inputs = CALL_INPUTS[task]

    def call(values: tuple[list[Any], ...]) -> SimpleNamespace:
        n = len(values[-1])
        try:
            out = fn(**dict(zip(inputs, values, strict=True)), **kwargs)
        except Exception as exc:  # noqa: BLE001 - user code: the case fails with the reason
            raise ModelError(f"model {origin(name)} raised on {values[1 if task == 'edit' else 0]!r}: "
                             f"{type(exc).__name__}: {exc}") from exc
        if isinstance(out, (str, bytes)) or not hasattr(out, "__len__") or len(out) != n:
            raise ModelError(f"model {origin(name)} returned {type(out).__name__}"
                             f"{f' of {len(out)}' if hasattr(out, '__len__') else ''}; expected a list of {n} image(s)")
        return SimpleNamespace(images=[as_image(o, name) for o in out], nsfw_content_detected=None)

    return call


def run_edit(case: Any, ctx: Any) -> CaseResult:
    """An edit case with a callable model: the edit task's inputs, outputs and metrics, the callable's images."""
    from imgx.tasks.diffusion_common import invalid_verdict, latency_metric_rows, save_outputs, timed_calls, timing_info
    from imgx.tasks.edit import _clip_rows, _pixel_rows, _save_inputs, load_inputs, make_pairs
    from imgx.tasks.edit_truth import truth_rows

    spec, inf, name = case.spec, case.spec.inference, case.spec.model.name
    data = load_inputs(spec, case.seed, ctx.resources)
    pairs = make_pairs(spec, data, case.seed)
    images = [im.convert("RGB") for im in data["images"]]
    fn, kwargs = load(case, "edit")
    call = _caller(fn, kwargs, "edit", name)
    timed = timed_calls(pairs, lambda p: call(([images[p.index]], [p.prompt], [p.seed])), {}, device=case.device,
                        warmup=inf.warmup, repeats=inf.repeats, progress=ctx.progress, desc=case.id)
    input_paths = _save_inputs(ctx, data)

    def describe(pair) -> tuple[list[Any], dict[str, Any]]:
        return [pair.name, pair.prompt, pair.seed], {
            "prompt": pair.prompt, "seed": pair.seed, "input_path": pair.input_path,
            "input_image": input_paths[pair.index], "input_name": pair.name, "model": name,
            **{k: v for k, v in kwargs.items() if isinstance(v, (int, float, str, bool))}, "device": case.device}

    outputs, arrays, valid, invalid = save_outputs(ctx, case.id, timed, describe)
    results = timed.results
    info: dict[str, Any] = {}
    rows: list[MetricRow] = []
    rows += _pixel_rows(spec.metrics, data["images"], results, arrays, valid, case.seed)
    rows += truth_rows(spec.metrics, data, results, arrays, valid, case.seed)
    rows += _clip_rows(spec, case, ctx, data["images"], results, arrays, valid, outputs, info)
    if "latency" in spec.metrics:
        rows += latency_metric_rows(timed, device=case.device, steps=inf.num_inference_steps)
    status, detail = invalid_verdict(invalid, len(results), spec.max_invalid)
    info.update(_info(case, kwargs, data, len(results), valid, invalid, timing_info(timed, case.device)))
    return CaseResult(status=status, detail=detail, rows=rows, outputs=outputs, info=info)


def run_text_to_image(case: Any, ctx: Any) -> CaseResult:
    """A text-to-image case with a callable model: the task's prompts, outputs and metrics, the callable's images."""
    from imgx.tasks.diffusion_common import invalid_verdict, latency_metric_rows, save_outputs, timed_calls, timing_info
    from imgx.tasks.text_to_image import (
        _clip_rows,
        _distribution_rows,
        _prompt_rows,
        case_prompts,
        load_data,
        make_samples,
        reference_data,
        to_tensor,
    )

    spec, inf, name = case.spec, case.spec.inference, case.spec.model.name
    data = load_data(spec.data, case.seed, ctx.resources)
    prompts, prompt_source = case_prompts(spec, data)
    n_samples = spec.samples or 1
    calls = make_samples(prompts, n_samples, case.seed)
    fn, kwargs = load(case, "text-to-image")
    call = _caller(fn, kwargs, "text-to-image", name)
    timed = timed_calls(calls, lambda group: call(([s.prompt for s in group], [s.seed for s in group])), {},
                        device=case.device, warmup=inf.warmup, repeats=inf.repeats, progress=ctx.progress,
                        desc=case.id, per_image=lambda group, j: group[j])
    samples = [item for item, _, _ in timed.results]

    def describe(s) -> tuple[list[Any], dict[str, Any]]:
        return [s.prompt, s.seed], {
            "prompt": s.prompt, "seed": s.seed, "input_path": "", "prompt_index": s.prompt_index, "sample": s.sample,
            "model": name, "device": case.device,
            **{k: v for k, v in kwargs.items() if isinstance(v, (int, float, str, bool))}}

    outputs, arrays, valid, invalid = save_outputs(ctx, case.id, timed, describe)
    info: dict[str, Any] = {}
    rows: list[MetricRow] = []
    sizes = {a.shape for a in arrays}
    fake = to_tensor([arrays[k] for k in valid]) if valid and len(sizes) == 1 else None
    ref_spec = spec.reference_data or spec.data
    reference = reference_data(case, ctx)
    wants = set(spec.metrics)
    if "clip_score" in wants:
        rows += _clip_rows(case, ctx, data, arrays, samples, valid, info, reference)
    if "prompt_accuracy" in wants:
        rows += _prompt_rows(case, ctx, fake, samples, valid, None, reference)
    if fake is not None:
        rows += _distribution_rows(case, ctx, reference, ref_spec, fake, None, info)
    elif {"fid", "kid"} & wants:
        why = "no valid outputs" if not valid else f"outputs of different sizes {sorted(sizes)}"
        rows += [MetricRow(m, None, status="failed", detail=why) for m in ("fid", "kid") if m in wants]
    if "latency" in wants:
        rows += latency_metric_rows(timed, device=case.device, steps=inf.num_inference_steps,
                                    images_per_call=n_samples)
    status, detail = invalid_verdict(invalid, len(outputs), spec.max_invalid)
    info.update(_info(case, kwargs, data, len(outputs), valid, invalid, timing_info(timed, case.device)),
                prompts=prompts, prompt_source=prompt_source, samples_per_prompt=n_samples)
    return CaseResult(status=status, detail=detail, rows=rows, outputs=outputs, info=info)


def _info(case: Any, kwargs: dict[str, Any], data: dict[str, Any], total: int, valid: list[int],
          invalid: dict[str, int], timing: dict[str, Any]) -> dict[str, Any]:
    return {"model": {"name": origin(case.spec.model.name), "call_kwargs": {k: str(v) for k, v in kwargs.items()},
                      "kind": "callable (imgx.models.protocol)"},
            "device": case.device, "data": data.get("info", {}), "outputs": total, "valid_outputs": len(valid),
            "invalid_outputs": sum(invalid.values()), "invalid_reasons": invalid, "timing": timing}
