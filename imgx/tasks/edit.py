"""The ``edit`` task: text-guided editing with InstructPix2Pix, one sweep point per case.

Steps of a case:
    1. Load the inputs (cached in ``ctx.resources`` across the sweep) and pair each image with each prompt
       (``prompts:``), or with its own instruction (``data: edit-csv``).
    2. Get the pipeline (loaded once per weights/device/dtype, kept in ``ctx.resources``) and swap in the
       case's scheduler.
    3. ``inference.warmup`` untimed calls on the first pair, then one timed call per pair, each with its own
       CPU ``torch.Generator`` seeded from the case seed, the image and the prompt. If there are fewer pairs
       than ``inference.repeats``, the first pair is called again (timed, output discarded) until there are.
       Every call is timed end to end (CUDA synchronised) and split into stages by forward hooks.
    4. Each output is checked (NaN, all black, safety-checker hit), saved as PNG and written to
       ``outputs.csv`` with everything needed to reproduce it with a bare diffusers call:
       ``pipe(prompt, image=Image.open(input_image), num_inference_steps=..., guidance_scale=...,
       image_guidance_scale=..., generator=torch.Generator("cpu").manual_seed(seed)).images[0]``
       with the scheduler swapped by ``from_config``.
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
from imgx.results import CaseResult, MetricRow
from imgx.suite.expand import stable_seed

log = logging.getLogger("imgx.tasks.edit")

CLIP_METRICS = ("clip_score", "clip_image_similarity", "clip_directional_similarity")
PIXEL = ("mse", "psnr", "ssim")
BLACK_MAX = 3  # an output whose every uint8 channel value is <= 3 counts as all-black
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


def output_seed(case_seed: int, index: int, name: str, prompt: str) -> int:
    """A 31-bit generator seed from the case seed, the image and the prompt (stable when prompts are added)."""
    return stable_seed(case_seed, index, name, prompt)


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


def _stages(pipe) -> dict[str, list]:
    vae = pipe.vae
    return {"text_encode": [pipe.text_encoder],
            "image_encode": [vae.encoder, getattr(vae, "quant_conv", None)],
            "denoise": [pipe.unet],
            "vae_decode": [getattr(vae, "post_quant_conv", None), vae.decoder]}


def run(case, ctx) -> CaseResult:
    """Run one edit case; see the module docstring."""
    import torch

    from imgx.metrics.timing import (
        STAGES,
        Clock,
        StageTimer,
        peak_memory_mb,
        reset_peak_memory,
        rows_from_samples,
    )
    from imgx.models.instruct_pix2pix import load_pipeline, set_scheduler
    from imgx.models.ip2p_train import annotate_trained, prepare_trained
    from imgx.tasks.edit_truth import truth_rows

    spec, inf = case.spec, case.spec.inference
    data = load_inputs(spec, case.seed, ctx.resources)
    pairs = make_pairs(spec, data, case.seed)
    images = data["images"]
    trained = prepare_trained(case, ctx, data)  # weights: train (and CLIP model: train) -> folders trained here
    spec = trained.spec if trained else spec
    loaded = load_pipeline(spec.model, case.device, ctx.cache_dir, ctx.resources)
    set_scheduler(loaded, inf.scheduler)
    pipe = loaded.pipe
    call_kwargs = {"num_inference_steps": inf.num_inference_steps, "guidance_scale": inf.guidance_scale,
                   "image_guidance_scale": inf.image_guidance_scale, "output_type": "np"}

    def call(pair: Pair):
        generator = torch.Generator("cpu").manual_seed(pair.seed)
        return pipe(prompt=pair.prompt, image=images[pair.index], generator=generator, **call_kwargs)

    for _ in range(inf.warmup):
        call(pairs[0])
    reset_peak_memory(case.device)
    samples: list[float] = []
    results: list[tuple[Pair, np.ndarray, bool | None]] = []
    with StageTimer(_stages(pipe), case.device) as stages:

        def timed(pair: Pair):
            stages.begin()
            with Clock(case.device) as clock:
                out = call(pair)
            stages.end()
            samples.append(clock.ms)
            return out

        for pair in ctx.progress(pairs, desc=case.id[:40], unit="img"):
            out = timed(pair)
            flags = out.nsfw_content_detected
            results.append((pair, out.images[0], None if flags is None else bool(flags[0])))
        while len(samples) < inf.repeats:
            timed(pairs[0])
    peak = peak_memory_mb(case.device)

    # Save every output (invalid ones too, so that they can be looked at) and its provenance.
    input_paths = _save_inputs(ctx, data)
    outputs, valid, invalid = [], [], {}
    out_arrays = []
    for k, (pair, image, nsfw) in enumerate(results):
        reason = classify(image, nsfw)
        arr = to_uint8(image)
        out_arrays.append(arr)
        path = ctx.save_image(arr, case.id, pair.name, pair.prompt, pair.seed, k)
        outputs.append({"prompt": pair.prompt, "seed": pair.seed, "input_path": pair.input_path, "path": path,
                        "input_image": input_paths[pair.index], "input_name": pair.name,
                        "scheduler": inf.scheduler, "num_inference_steps": inf.num_inference_steps,
                        "guidance_scale": inf.guidance_scale, "image_guidance_scale": inf.image_guidance_scale,
                        "dtype": spec.model.dtype, "device": case.device, "generator_device": "cpu",
                        "weights": loaded.info["weights"], "valid": not reason, "invalid_reason": reason})
        if reason:
            invalid[reason] = invalid.get(reason, 0) + 1
        else:
            valid.append(k)

    rows: list[MetricRow] = []
    info: dict[str, Any] = {}
    rows += _pixel_rows(spec.metrics, images, results, out_arrays, valid, case.seed)
    rows += truth_rows(spec.metrics, data, results, out_arrays, valid, case.seed,
                       vae=pipe.vae if trained and trained.trained_pipeline else None)
    rows += _clip_rows(spec, case, ctx, images, results, out_arrays, valid, outputs, info)
    if "latency" in spec.metrics:
        stage_ms = {s: stages.median(s) for s in STAGES}
        rows += rows_from_samples(samples, device=case.device, steps=inf.num_inference_steps,
                                  denoise_ms=stage_ms["denoise"], stage_ms=stage_ms, peak=peak)

    n_invalid = sum(invalid.values())
    status, detail = "ok", ""
    if n_invalid > spec.max_invalid:
        what = ", ".join(f"{v} {k}" for k, v in sorted(invalid.items()))
        status, detail = "failed", (f"{n_invalid} of {len(results)} outputs invalid ({what}); "
                                    f"max_invalid is {spec.max_invalid}")
    elif n_invalid:
        detail = f"{n_invalid} of {len(results)} outputs invalid (tolerated by max_invalid {spec.max_invalid})"

    info.update({
        "model": {k: v for k, v in loaded.info.items()},
        "random_weights": bool(loaded.info.get("random_weights")),
        "scheduler": inf.scheduler, "scheduler_class": type(pipe.scheduler).__name__,
        "dtype": spec.model.dtype, "device": case.device, "torch_threads": torch.get_num_threads(),
        "generator_device": "cpu", "data": data.get("info", {}), "outputs": len(results), "valid_outputs": len(valid),
        "invalid_outputs": n_invalid, "invalid_reasons": invalid,
        "timing": {"warmup_calls": inf.warmup, "timed_calls": len(samples), "repeats": inf.repeats,
                   "stage_split": "forward hooks; a stage spans its first module call to its last",
                   "cuda_synchronized": case.device.startswith("cuda")},
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
