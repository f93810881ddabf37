"""The ``edit`` task: text-guided image editing with a diffusers pipeline, one sweep point per case.

``model: instruct-pix2pix`` loads a ``StableDiffusionInstructPix2PixPipeline``; ``model: diffusers-img2img`` any
diffusers image-to-image pipeline ``AutoPipelineForImage2Image`` maps the folder's ``model_index.json`` to (SD 1/2,
SDXL img2img), called with ``strength`` instead of ``image_guidance_scale``. The call's keyword arguments are
checked against the pipeline's own ``__call__`` signature (:func:`call_arguments`).

Steps of a case:
    1. Load the inputs (cached in ``ctx.resources`` across the sweep) and pair each image with each prompt
       (``prompts:``), or with its own instruction (``data: edit-csv``).
    2. Get the pipeline (loaded once per weights/device/dtype, kept in ``ctx.resources``) and swap in the
       case's scheduler.
    3. ``inference.warmup`` untimed calls on the first pair, then one timed call per pair, each with its own
       CPU ``torch.Generator`` seeded from the case seed, the image and the prompt. If there are fewer pairs
       than ``inference.repeats``, the first pair is called again (timed, output discarded) until there are.
       Every call is timed end to end (CUDA synchronised) and split into stages by forward hooks.
       Guidance sweeps (``inference.batch_sweep``, default on): when the case has later sweep points that differ
       only in guidance scales, the outputs of all of them come from batched denoising loops
       (:mod:`imgx.tasks.batched_sweep`); latency then comes from ``warmup`` + ``repeats`` single calls of the
       first pair (only when ``latency`` is requested), never from the batched loops. Image-to-image pipelines
       are not batched (one call per point; the case detail says why).
    4. Each output is checked (NaN, all black, safety-checker hit), saved as PNG and written to
       ``outputs.csv`` with everything needed to reproduce it with a bare diffusers call:
       ``pipe(prompt, image=Image.open(input_image), num_inference_steps=..., guidance_scale=...,
       image_guidance_scale=..., generator=torch.Generator("cpu").manual_seed(seed)).images[0]``
       with the scheduler swapped by ``from_config`` (image-to-image: ``strength=...`` instead of
       ``image_guidance_scale``, on ``AutoPipelineForImage2Image.from_pretrained(folder)``).
    5. Invalid outputs are excluded from quality metrics; more than ``max_invalid`` fails the case.
    6. Metrics on the valid outputs: CLIP score / image similarity / directional similarity, pixel metrics
       (input vs output) and latency.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgx.data import DATASETS
from imgx.errors import DataError
from imgx.metrics.cost import diffusion_cost_rows
from imgx.results import CaseResult, MetricRow
from imgx.tasks.diffusion_common import (
    classify,  # noqa: F401 - part of this module's interface (tests, older imports)
    invalid_verdict,
    latency_metric_rows,
    output_seed,
    save_outputs,
    stage_modules,
    timed_calls,
    timing_info,
    to_uint8,  # noqa: F401
)

log = logging.getLogger("imgx.tasks.edit")

CLIP_METRICS = ("clip_score", "clip_image_similarity", "clip_directional_similarity")
PIXEL = ("mse", "psnr", "ssim")
GRID_IMAGES = 8


@dataclass
class Pair:
    """One (input image, instruction) pair and the seed of its generator."""

    index: int
    name: str
    input_path: str
    prompt: str
    input_caption: str | None
    output_caption: str | None
    seed: int


def load_inputs(spec, seed: int, resources: dict[str, Any]) -> dict[str, Any]:
    """The data loader's ``edit`` dict, cached in ``resources`` by data settings and seed."""
    key = ("edit-data", spec.data.model_dump_json(), seed)
    if key not in resources:
        data = DATASETS.get(spec.data.name)(spec.data, seed, "edit")
        if not data["images"]:
            raise DataError(f"data {spec.data.name!r} gave no images")
        resources[key] = data
    return resources[key]


def make_pairs(spec, data: dict[str, Any], case_seed: int) -> list[Pair]:
    """Every image with every prompt of the case, or with its own instruction when the case has no prompts."""
    pairs = []
    n = len(data["images"])
    for i in range(n):
        name = data["names"][i]
        path = data["paths"][i] or f"{spec.data.name}:{name}"
        prompts = spec.prompts or ([data["instructions"][i]] if data["instructions"][i] else [])
        if not prompts:
            raise DataError(f"image {name!r} has no instruction and the case has no prompts")
        for prompt in prompts:
            pairs.append(Pair(i, name, path, prompt, data["input_captions"][i], data["output_captions"][i],
                              output_seed(case_seed, i, name, prompt)))
    return pairs


# Models whose pipelines the edit task loads with a loader kind other than InstructPix2Pix's.
PIPELINE_KINDS = {"diffusers-img2img": "img2img"}


def call_arguments(pipe, inference, kind: str) -> dict[str, Any]:
    """The keyword arguments of every pipeline call of the case, checked against the pipeline's ``__call__``.

    InstructPix2Pix gets ``image_guidance_scale``; an image-to-image pipeline gets ``strength`` when the case sets
    it (else the pipeline's default). Always ``num_inference_steps``, ``guidance_scale`` and ``output_type="np"``.

    Raises:
        WeightsError: the loaded pipeline takes no such argument (naming the ``inference`` field).
    """
    import inspect

    from imgx.errors import WeightsError

    wanted: dict[str, Any] = {"num_inference_steps": inference.num_inference_steps,
                              "guidance_scale": inference.guidance_scale}
    if kind == "edit":
        wanted["image_guidance_scale"] = inference.image_guidance_scale
    elif inference.strength is not None:
        wanted["strength"] = inference.strength
    params = inspect.signature(pipe.__call__).parameters
    for name in wanted:
        if name not in params:
            takes = sorted(p for p in params if p in ("num_inference_steps", "guidance_scale",
                                                      "image_guidance_scale", "strength"))
            raise WeightsError(f"inference.{name}: {type(pipe).__name__}.__call__ takes no {name!r}; of imgx's "
                               f"settings it takes {', '.join(takes)}")
    return {**wanted, "output_type": "np"}


def default_strength(pipe) -> float | None:
    """The ``strength`` a call without one uses (the ``__call__`` default), or None when it takes none."""
    import inspect

    param = inspect.signature(pipe.__call__).parameters.get("strength")
    return None if param is None or param.default is inspect.Parameter.empty else float(param.default)


def run(case, ctx) -> CaseResult:
    """Run one edit case; see the module docstring."""
    from imgx.models.protocol import uses_pipeline

    if not uses_pipeline(case.spec.model.name):  # a callable model (imgx.models.protocol): same outputs and metrics
        from imgx.tasks.user_callable import run_edit

        return run_edit(case, ctx)
    import torch

    from imgx.models.instruct_pix2pix import load_pipeline, set_scheduler
    from imgx.models.ip2p_train import annotate_trained, prepare_trained
    from imgx.tasks.batched_sweep import edit_outputs, note_for
    from imgx.tasks.batched_sweep import record as record_sweep
    from imgx.tasks.edit_truth import truth_rows

    spec, inf = case.spec, case.spec.inference
    data = load_inputs(spec, case.seed, ctx.resources)
    pairs = make_pairs(spec, data, case.seed)
    images = data["images"]
    trained = prepare_trained(case, ctx, data)  # weights: train (and CLIP model: train) -> folders trained here
    spec = trained.spec if trained else spec
    kind = PIPELINE_KINDS.get(spec.model.name, "edit")
    loaded = load_pipeline(spec.model, case.device, ctx.cache_dir, ctx.resources, kind=kind)
    set_scheduler(loaded, inf.scheduler)
    pipe = loaded.pipe
    call_kwargs = call_arguments(pipe, inf, kind)
    settings = {k: v for k, v in call_kwargs.items() if k != "output_type"}
    if kind != "edit":
        settings["strength"] = settings.get("strength", default_strength(pipe))

    def call(pair: Pair):
        generator = torch.Generator("cpu").manual_seed(pair.seed)
        return pipe(prompt=pair.prompt, image=images[pair.index], generator=generator, **call_kwargs)

    sweep = edit_outputs(case, ctx, loaded, images, pairs)  # None: one pipeline call per output
    single_calls = sweep is None or "latency" in spec.metrics  # latency never comes from batched loops
    timed = timed_calls(pairs, call, stage_modules(pipe), device=case.device,
                        warmup=inf.warmup if single_calls else 0, repeats=inf.repeats if single_calls else 0,
                        progress=ctx.progress, desc=case.id,
                        precomputed=None if sweep is None else list(zip(sweep.images, sweep.nsfw, strict=True)))
    results = timed.results
    batch_points = {id(p): n for p, n in zip(pairs, sweep.batch_points, strict=True)} if sweep else {}

    # Save every output (invalid ones too, so that they can be looked at) and its provenance.
    input_paths = _save_inputs(ctx, data)

    def describe(pair: Pair) -> tuple[list[Any], dict[str, Any]]:
        return [pair.name, pair.prompt, pair.seed], {
            "prompt": pair.prompt, "seed": pair.seed, "input_path": pair.input_path,
            "input_image": input_paths[pair.index], "input_name": pair.name,
            "scheduler": inf.scheduler, **settings, "dtype": spec.model.dtype, "device": case.device,
            "generator_device": "cpu",
            "weights": loaded.info["weights"], "batch_points": batch_points.get(id(pair), 1)}

    outputs, out_arrays, valid, invalid = save_outputs(ctx, case.id, timed, describe)

    rows: list[MetricRow] = []
    info: dict[str, Any] = {}
    rows += _pixel_rows(spec.metrics, images, results, out_arrays, valid, case.seed)
    rows += truth_rows(spec.metrics, data, results, out_arrays, valid, case.seed,
                       vae=pipe.vae if trained and trained.trained_pipeline else None)
    rows += _clip_rows(spec, case, ctx, images, results, out_arrays, valid, outputs, info)
    if "latency" in spec.metrics:
        rows += latency_metric_rows(timed, device=case.device, steps=inf.num_inference_steps)
    rows += diffusion_cost_rows(case, pipe, lambda: call(pairs[0]), images=1, sweep_info=sweep and sweep.info)

    n_invalid = sum(invalid.values())
    status, detail = invalid_verdict(invalid, len(results), spec.max_invalid)
    detail = record_sweep(sweep, rows, info, detail, note_for(case, ctx))

    info.update({
        "model": {k: v for k, v in loaded.info.items()},
        "random_weights": bool(loaded.info.get("random_weights")),
        "scheduler": inf.scheduler, "scheduler_class": type(pipe.scheduler).__name__, "call_arguments": settings,
        "dtype": spec.model.dtype, "device": case.device, "torch_threads": torch.get_num_threads(),
        "generator_device": "cpu", "data": data.get("info", {}), "outputs": len(results), "valid_outputs": len(valid),
        "invalid_outputs": n_invalid, "invalid_reasons": invalid,
        "timing": timing_info(timed, case.device),
    })
    if info["random_weights"]:
        info["label"] = "random-weight pipeline (weights: tiny): images are noise-like, figures test plumbing only"
    if trained:
        detail = annotate_trained(trained, pairs, outputs, rows, info, detail)
    artifacts = _artifacts(ctx, case, spec, data, results, out_arrays, outputs)
    return CaseResult(status=status, detail=detail, rows=rows, outputs=outputs, artifacts=artifacts, info=info,
                      history=trained.history if trained else [])


def _save_inputs(ctx, data: dict[str, Any]) -> list[str]:
    """Save each input once per run (the name hashes the pixels, so sweep cases share the file)."""
    from imgx.imageio import safe_name

    paths = []
    for name, image in zip(data["names"], data["images"], strict=True):
        arr = np.asarray(image.convert("RGB"))
        digest = hashlib.sha256(arr.tobytes() + str(arr.shape).encode()).hexdigest()[:12]
        file_name = safe_name("input", name, digest)
        if (ctx.images_dir / file_name).exists():
            paths.append(str(Path(ctx.images_dir.name) / file_name))
        else:
            paths.append(ctx.save_image(arr, "input", name, digest))
    return paths


def input_like(image, out: np.ndarray) -> np.ndarray:
    """The input as ``(H, W, 3)`` uint8 at the output's size.

    The pipeline rounds sizes down to a multiple of the VAE's scale factor (8 for Stable Diffusion), so a
    500 px input gives a 496 px output; the input is then resized (LANCZOS) so that they can be compared.
    """
    from PIL import Image

    h, w = out.shape[:2]
    image = image.convert("RGB")
    if image.size != (w, h):
        image = image.resize((w, h), Image.Resampling.LANCZOS)
    return np.asarray(image)


def _pixel_rows(metrics, images, results, out_arrays, valid, seed) -> list[MetricRow]:
    from imgx.imageio import arrays_to_unit
    from imgx.metrics import metric_info
    from imgx.metrics.pixel import PIXEL_METRICS
    from imgx.metrics.stats import mean_with_ci

    rows = []
    wanted = [m for m in metrics if m in PIXEL]
    if not wanted:
        return rows
    if not valid:
        return [MetricRow(m, None, metric_info(m).unit, status="failed", detail="no valid outputs") for m in wanted]
    inputs = arrays_to_unit([input_like(images[results[k][0].index], out_arrays[k]) for k in valid])
    outs = arrays_to_unit([out_arrays[k] for k in valid])
    for m in wanted:
        values = PIXEL_METRICS[m](inputs, outs).numpy()
        mean, low, high, n = mean_with_ci(values, seed=seed)
        rows.append(MetricRow(m, mean, metric_info(m).unit, n=n, ci_low=low, ci_high=high,
                              detail="input vs output, saved uint8 images, data_range=1.0 on [0,1] RGB"))
    return rows


def _clip_rows(spec, case, ctx, images, results, out_arrays, valid, outputs, info) -> list[MetricRow]:
    """CLIP rows; each metric may name its own CLIP model in ``metric_options.<metric>.model``."""
    from PIL import Image

    from imgx.metrics.clip import (
        DEFAULT_CLIP,
        ClipUnavailable,
        clip_score,
        directional_similarity,
        get_embedder,
        image_similarity,
    )
    from imgx.metrics.stats import mean_with_ci

    rows: list[MetricRow] = []
    wanted = [m for m in spec.metrics if m in CLIP_METRICS]
    clip_info: dict[str, Any] = {}
    if not wanted:
        return rows
    # The same valid outputs and their size-matched inputs for every CLIP metric (embeddings are cached by
    # content in each embedder).
    pairs = [results[k][0] for k in valid]
    inputs = [Image.fromarray(input_like(images[p.index], out_arrays[k])) for p, k in zip(pairs, valid, strict=True)]
    outs = [Image.fromarray(out_arrays[k]) for k in valid]
    for metric in wanted:
        options = spec.metric_options.get(metric, {})
        name = str(options.get("model", DEFAULT_CLIP))
        if not valid:
            rows.append(MetricRow(metric, None, status="failed", detail="no valid outputs"))
            continue
        try:
            emb = get_embedder(name, case.device, ctx.resources)
        except ClipUnavailable as exc:
            rows.append(MetricRow(metric, None, status="unavailable", detail=str(exc)))
            continue
        img_out = emb.images(outs)
        img_in = emb.images(inputs)
        detail_extra = ""
        if metric == "clip_score":
            use_caption = all(p.output_caption for p in pairs)
            texts = [p.output_caption if use_caption else p.prompt for p in pairs]
            txt = emb.texts(texts)
            values = clip_score(img_out, txt.embeds)
            ref = clip_score(img_in, txt.embeds)
            which = "output caption" if use_caption else "instruction"
            detail_extra = f"output image vs {which}; 100*max(cos,0)"
            for k, tokens in zip(valid, txt.tokens, strict=True):
                outputs[k]["clip_tokens"] = tokens
            _record_tokens(clip_info, metric, txt)
            mean, low, high, n = mean_with_ci(ref.numpy(), seed=case.seed)
            rows.append(MetricRow(metric, mean, "", "input-copy", n, low, high,
                                  detail=f"unedited input vs {which}: the score before editing"))
        elif metric == "clip_image_similarity":
            values = image_similarity(img_in, img_out)
            detail_extra = "cosine(input image, output image)"
        else:
            caps_in = [p.input_caption for p in pairs]
            caps_out = [p.output_caption for p in pairs]
            derive = bool(options.get("derive_captions", False))
            if not all(caps_out) or not all(caps_in):
                if not derive:
                    rows.append(MetricRow(metric, None, status="unavailable", detail=(
                        "needs input and output captions (data: edit-csv with input_caption and output_caption "
                        "columns); or set metric_options.clip_directional_similarity.derive_captions: true to use "
                        "input caption (or 'a photo') and '<input caption>, <instruction>'")))
                    continue
                caps_in = [c or "a photo" for c in caps_in]
                caps_out = [o or f"{i}, {p.prompt}" for o, i, p in zip(caps_out, caps_in, pairs, strict=True)]
                detail_extra = "captions derived: input caption or 'a photo' -> '<input caption>, <instruction>'; "
            t_in, t_out = emb.texts(caps_in), emb.texts(caps_out)
            _record_tokens(clip_info, metric, t_out)
            values = directional_similarity(img_in, img_out, t_in.embeds, t_out.embeds)
            detail_extra += "cosine(img_out - img_in, cap_out - cap_in)"
        mean, low, high, n = mean_with_ci(values.numpy(), seed=case.seed)
        rows.append(MetricRow(metric, mean, "", n=n, ci_low=low, ci_high=high,
                              detail=f"{detail_extra}; CLIP {name}"))
        clip_info.setdefault("models", {})[metric] = emb.info
    if clip_info:
        info["clip"] = clip_info
    return rows


def _record_tokens(clip_info: dict[str, Any], metric: str, txt) -> None:
    clip_info.setdefault("tokens", {})[metric] = {
        "max": max(txt.tokens), "truncated": int(sum(txt.truncated)),
        "policy": "first 75 tokens + EOS kept (tokenizer truncation=True, context 77)"}


def _artifacts(ctx, case, spec, data, results, out_arrays, outputs) -> dict[str, Any]:
    """A grid: inputs on top, then one row of outputs per prompt (at most ``GRID_IMAGES`` columns)."""
    from imgx.imageio import grid

    n = min(GRID_IMAGES, len(data["images"]))
    inputs = np.stack([input_like(im, out_arrays[0]) for im in data["images"][:n]])
    rows, labels = [inputs], ["input"]
    prompts = spec.prompts or [None]
    for prompt in prompts:
        row = [out_arrays[k] for k, (p, _, _) in enumerate(results)
               if p.index < n and (prompt is None or p.prompt == prompt)]
        if row and all(r.shape == inputs[0].shape for r in row):
            rows.append(np.stack(row))
            labels.append(prompt if prompt is not None else "output (own instruction)")
    scale = max(1, 96 // inputs.shape[1])
    path = ctx.save_image(grid(rows, scale=scale), case.id, "grid")
    return {"grid": path, "grid_rows": labels, "outputs": [o["path"] for o in outputs]}
