"""The ``text-to-image`` task: Stable Diffusion from prompts, one sweep point per case.

Steps of a case:
    1. Load the case's data (cached in ``ctx.resources`` across the sweep). The prompts are ``prompts:`` or,
       without it, the data set's distinct captions (digits: ``"a handwritten digit 0"`` .. ``9``).
    2. The pipeline: ``weights:`` a hub id, a local folder, ``tiny`` (random, plumbing only) or ``train`` (a micro
       latent diffusion model trained here on the data's image-caption pairs by
       :func:`imgx.models.trained.trained_diffusion`, cached by recipe and data; its per-epoch loss goes to
       ``history.csv``, its folder is copied to ``OUT/models/``). Loaded by the same loader as ``edit``
       (:mod:`imgx.models.instruct_pix2pix`, kind ``text-to-image``), scheduler swapped per case.
    3. One pipeline call per prompt making ``samples`` images (``num_images_per_prompt``), each image with its own
       CPU ``torch.Generator`` seeded from the case seed, the prompt and the sample index; warm-up, timing,
       stage split and repeats exactly as ``edit`` (:mod:`imgx.tasks.diffusion_common`). Latency is per call.
       Cases of a sweep that differ only in ``guidance_scale`` make their images together in batched denoising
       loops (:mod:`imgx.tasks.batched_sweep`, each image as a bare call with its seed makes it); latency then
       comes from ``warmup`` + ``repeats`` single calls of the first prompt, never from the batched loops.
    4. Each output is checked (NaN, all black, safety checker), saved and written to ``outputs.csv`` with what a
       bare diffusers call needs to reproduce it: ``pipe(prompt, num_images_per_prompt=len(call_seeds),
       generator=[torch.Generator("cpu").manual_seed(s) for s in call_seeds], num_inference_steps=...,
       guidance_scale=..., height=..., width=...).images[sample]`` with the scheduler swapped by ``from_config``.
    5. Metrics on the valid outputs: ``clip_score`` (image vs its prompt; ``model: train`` trains an in-domain CLIP
       here), ``prompt_accuracy`` (the digits classifier), ``fid``/``kid`` against ``reference_data`` (default:
       the held-out split of the case's data) with the references ``real-split`` and ``untrained`` (and
       ``real-split-resized``, the same real images at the outputs' size, when that differs from the reference's),
       latency.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from imgx.data import DATASETS
from imgx.errors import DataError
from imgx.metrics.cost import diffusion_cost_rows
from imgx.results import CaseResult, MetricRow
from imgx.tasks.diffusion_common import (
    invalid_verdict,
    latency_metric_rows,
    output_seed,
    save_outputs,
    stage_modules,
    timed_calls,
    timing_info,
)

log = logging.getLogger("imgx.tasks.text_to_image")

FID_MIN_IMAGES = 20  # fewer generated (or reference) images than this: FID/KID rows are refused as unavailable
GRID_SAMPLES = 8  # columns of the sample grid (one row per prompt)
GRID_PROMPTS = 10
# The in-domain CLIP trained for ``metric_options: {clip_score: {model: train}}`` is trained with the fixed recipe
# ``imgx.models.trained.DIGITS_RECIPES["clip"]`` (one CLIP per data set, whatever the case's ``train:``).
CLIP_TRAIN_LABEL = "in-domain CLIP trained here"


@dataclass(frozen=True)
class Sample:
    """One output: its prompt, the index of the call (prompt) and of the image in that call, and its seed."""

    prompt_index: int
    prompt: str
    sample: int
    seed: int
    call_seeds: tuple[int, ...]


def load_data(spec, seed: int, resources: dict[str, Any]) -> dict[str, Any]:
    """The data loader's ``text-to-image`` dict for a :class:`~imgx.suite.schema.DataSpec`, cached in ``resources``."""
    key = ("t2i-data", spec.model_dump_json(), seed)
    if key not in resources:
        resources[key] = DATASETS.get(spec.name)(spec, seed, "text-to-image")
    return resources[key]


def case_prompts(spec, data: dict[str, Any]) -> tuple[list[str], str]:
    """The case's prompts and where they came from (``prompts:`` or the data set's distinct captions)."""
    if spec.prompts:
        return list(spec.prompts), "prompts"
    captions = data.get("test_captions") or data.get("train_captions")
    if not captions:
        raise DataError(f"data {spec.data.name!r} has no captions; give the case prompts")
    return sorted(set(captions)), f"distinct captions of data {spec.data.name!r}"


def make_samples(prompts: list[str], samples: int, case_seed: int) -> list[list[Sample]]:
    """Per prompt, its ``samples`` outputs with their seeds (stable when prompts or samples are added)."""
    calls = []
    for i, prompt in enumerate(prompts):
        seeds = tuple(output_seed(case_seed, prompt, j) for j in range(samples))
        calls.append([Sample(i, prompt, j, s, seeds) for j, s in enumerate(seeds)])
    return calls


def rgb(images):
    """``(N, C, H, W)`` in ``[-1, 1]`` with C 1 or 3 → ``(N, 3, H, W)`` (one channel repeated)."""
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images


def to_tensor(arrays: list[np.ndarray]):
    """Saved outputs ``(H, W, 3)`` uint8 → ``(N, 3, H, W)`` float32 in ``[-1, 1]`` (what FID/classifier read)."""
    from imgx.imageio import array_to_tensor

    return array_to_tensor(np.stack(arrays))


# ------------------------------------------------------------------------------------------------ training
def _train(case, ctx, data: dict[str, Any]):
    """Train (or reuse) the micro diffusion model on the data's image-caption pairs."""
    from imgx.models.trained import trained_diffusion

    spec = case.spec
    if not data.get("train_captions"):
        raise DataError(f"weights: train needs image captions; data {spec.data.name!r} has none")
    t = spec.train
    return trained_diffusion("text-to-image", images=rgb(data["train"]), captions=list(data["train_captions"]),
                             epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, seed=case.seed,
                             cache_dir=ctx.cache_dir, image_size=spec.data.image_size, progress=ctx.progress,
                             device=case.device, data_label=f"{spec.data.name} image-caption pairs")


def _copy_model(ctx, folder: Path) -> str:
    """Copy a trained model folder into ``OUT/models/<folder name>/`` once per run; returns the relative path."""
    target = ctx.out / "models" / folder.name
    if not (target / "model_index.json").is_file():
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(folder, tmp, ignore=shutil.ignore_patterns(".*"))
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return str(target.relative_to(ctx.out))


# Config values training sets from the data (the VAE's latent scale), not architecture: taken from the folder.
_FITTED = frozenset({"scaling_factor"})


def untrained_pipeline(folder: Path, recipe: dict[str, Any], scheduler, device: str, resources: dict[str, Any]):
    """The pipeline trained in ``folder`` as it was at initialisation, with the case's scheduler.

    The components are built by the same code that built the trained model before its first step
    (:func:`imgx.models.micro_diffusion.micro_components` with the recipe's ``image_size`` and ``seed`` and the
    folder's tokenizer), so their weights are the trained model's initial weights, token-embedding scaling
    included; only the VAE's latent ``scaling_factor``, which training measures on the data, is the folder's.
    This is the ``untrained`` reference: the same architecture at initialisation.

    The components are built once per (folder, recipe, device); the pipeline is keyed by the scheduler too (a
    fresh copy of ``scheduler``: its class and config), so every point of a scheduler sweep samples with its own.
    """
    import json as _json

    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTokenizer

    from imgx.models.micro_diffusion import micro_components

    parts_key = ("t2i-untrained", str(folder), int(recipe["image_size"]), int(recipe["seed"]), str(device))
    if parts_key not in resources:
        tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
        parts = micro_components("text-to-image", image_size=int(recipe["image_size"]), tokenizer=tokenizer,
                                 seed=int(recipe["seed"]))
        for name in ("unet", "vae"):  # refuse to call a different architecture "the same at initialisation"
            saved = _json.loads((folder / name / "config.json").read_text(encoding="utf-8"))
            built = dict(parts[name].config)
            differ = sorted(k for k in saved if not k.startswith("_") and k in built and k not in _FITTED
                            and _json.dumps(saved[k]) != _json.dumps(built[k], default=list))
            if differ:
                raise DataError(f"{folder}: its {name} config differs from the micro recipe's in {differ[:3]}; "
                                "no untrained reference can be built for it")
            for k in _FITTED.intersection(saved):
                parts[name].register_to_config(**{k: saved[k]})
        resources[parts_key] = {k: parts[k].to(device) if hasattr(parts[k], "to") else parts[k]
                                for k in ("unet", "vae", "text_encoder", "tokenizer")}
    key = (*parts_key, type(scheduler).__name__, _json.dumps(dict(scheduler.config), sort_keys=True, default=str))
    if key not in resources:
        pipe = StableDiffusionPipeline(**resources[parts_key],
                                       scheduler=type(scheduler).from_config(scheduler.config),
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        resources[key] = pipe
    return resources[key]


def _sample(pipe, calls: list[list[Sample]], call_kwargs: dict[str, Any]) -> list[np.ndarray]:
    """Untimed sampling of every call (the untrained reference), uint8 arrays in call order."""
    import torch

    from imgx.tasks.diffusion_common import to_uint8

    out = []
    for group in calls:
        generators = [torch.Generator("cpu").manual_seed(s.seed) for s in group]
        images = pipe(prompt=group[0].prompt, num_images_per_prompt=len(group), generator=generators,
                      **call_kwargs).images
        out += [to_uint8(im) for im in images]
    return out


# ------------------------------------------------------------------------------------------------ metrics
def _clip_embedder(case, ctx, data: dict[str, Any], info: dict[str, Any]):
    """The CLIP ``clip_score`` asks for and its provenance text; ``model: train`` trains one here.

    Raises:
        ClipUnavailable: the named CLIP cannot be loaded (its reason).
    """
    from imgx.metrics.clip import DEFAULT_CLIP, ClipUnavailable, get_embedder

    name = str(case.spec.metric_options.get("clip_score", {}).get("model", DEFAULT_CLIP))
    if name != "train":
        return get_embedder(name, case.device, ctx.resources), f"CLIP {name}"
    key = ("t2i-clip-train", case.spec.data.model_dump_json(), case.device)
    if key not in ctx.resources:
        ctx.resources[key] = _train_clip(case, ctx, data)
    trained = ctx.resources[key]
    if isinstance(trained, ClipUnavailable):
        raise trained
    folder, provenance = trained
    info["clip_trained"] = {"folder": str(folder), "provenance": provenance}
    return get_embedder(str(folder), case.device, ctx.resources), provenance


def _train_clip(case, ctx, data: dict[str, Any]):
    from imgx.metrics.clip import ClipUnavailable
    from imgx.models.trained import DIGITS_RECIPES, trained_clip

    captions = data.get("train_captions")
    if not captions:
        return ClipUnavailable(f"model: train needs image captions; data {case.spec.data.name!r} has none")
    heldout = None
    if data.get("test_captions") and data.get("test_labels") is not None:
        labels = data["test_labels"]
        classes = sorted({int(c) for c in labels.tolist()} | {int(c) for c in data["train_labels"].tolist()})
        import torch

        from imgx.data.digits import caption

        rows = torch.searchsorted(torch.tensor(classes), labels.long())  # label value -> its caption's row
        heldout = (rgb(data["test"]), rows, [caption(c) for c in classes])
    recipe = DIGITS_RECIPES["clip"]
    model = trained_clip(images=rgb(data["train"]), captions=list(captions), cache_dir=ctx.cache_dir, heldout=heldout,
                         progress=ctx.progress, device=case.device, **recipe)
    acc = model.info.get("zero_shot_accuracy")
    acc_text = f"zero-shot accuracy {acc:.3f} on the held-out split" if acc is not None else "no zero-shot check"
    provenance = (f"{CLIP_TRAIN_LABEL} on {len(captions)} {case.spec.data.name} image-caption pairs (train split, "
                  f"{recipe['epochs']} epochs), {acc_text}; folder {model.folder}; its scores are NOT comparable "
                  "with OpenAI CLIP scores")
    return Path(model.folder), provenance


def _clip_rows(case, ctx, data, arrays, samples, valid, info, reference) -> list[MetricRow]:
    from PIL import Image

    from imgx.imageio import tensor_to_array
    from imgx.metrics.clip import ClipUnavailable, clip_score
    from imgx.metrics.stats import mean_with_ci

    if not valid:
        return [MetricRow("clip_score", None, status="failed", detail="no valid outputs")]
    try:
        emb, provenance = _clip_embedder(case, ctx, data, info)
    except ClipUnavailable as exc:
        return [MetricRow("clip_score", None, status="unavailable", detail=str(exc))]
    values = clip_score(emb.images([Image.fromarray(arrays[k]) for k in valid]),
                        emb.texts([samples[k].prompt for k in valid]).embeds)
    mean, low, high, n = mean_with_ci(values.numpy(), seed=case.seed)
    rows = [MetricRow("clip_score", mean, "", n=n, ci_low=low, ci_high=high,
                      detail=f"generated image vs its prompt; 100*max(cos,0); {provenance}")]
    ref_images, ref_captions = reference.get("test"), reference.get("test_captions")
    if ref_images is not None and ref_captions:
        real = [Image.fromarray(a) for a in tensor_to_array(rgb(ref_images))]
        ref_values = clip_score(emb.images(real), emb.texts(list(ref_captions)).embeds)
        mean, low, high, n = mean_with_ci(ref_values.numpy(), seed=case.seed)
        rows.append(MetricRow("clip_score", mean, "", "real-split", n, low, high,
                              detail=f"real reference images vs their own captions; {provenance}"))
    info.setdefault("clip", {})["clip_score"] = {**emb.info, "provenance": provenance}
    return rows


def _on_data(case, data_spec) -> SimpleNamespace:
    """``case`` as generate's extractor cache sees it, with ``data_spec`` as its data (the extractor's key)."""
    return SimpleNamespace(spec=SimpleNamespace(data=data_spec), seed=case.seed, device=case.device, id=case.id)


def _digits_classifier(case, ctx):
    """imgx's digits classifier (trained on the embedded digits' train split at 28x28, cached, as generate's)."""
    from imgx.suite.schema import DataSpec
    from imgx.tasks.generate import _extractor

    spec = DataSpec(name="digits")
    digits = DATASETS.get("digits")(spec, case.seed, "generate")
    return _extractor("digits-classifier", {}, digits, _on_data(case, spec), ctx)


def _prompt_rows(case, ctx, fake, samples, valid, untrained, reference) -> list[MetricRow]:
    from imgx.metrics.features import FeaturesUnavailable
    from imgx.metrics.prompt import digit_class, prompt_accuracy

    targets = {k: digit_class(samples[k].prompt) for k in valid}
    named = [k for k in valid if targets[k] is not None]
    prompts = sorted({s.prompt for s in samples})
    if not valid:
        return [MetricRow("prompt_accuracy", None, status="failed", detail="no valid outputs")]
    if not named:
        return [MetricRow("prompt_accuracy", None, status="unavailable", detail=(
            f"no prompt names a class a classifier here knows (digits 0-9 with 'digit', 'number', 'numeral' or "
            f"'handwritten'); prompts: {'; '.join(prompts)[:200]}"))]
    try:
        ex = _digits_classifier(case, ctx)
    except FeaturesUnavailable as exc:
        return [MetricRow("prompt_accuracy", None, status="unavailable", detail=str(exc))]
    index = {k: i for i, k in enumerate(valid)}
    target = np.array([targets[k] for k in named])
    pred = ex.classify(fake[[index[k] for k in named]]).numpy()
    what = (f"digits-classifier (test accuracy {ex.test_accuracy:.3f}, weights {ex.weights_hash}); "
            f"{len(named)} of {len(valid)} valid images have prompts naming a digit")
    mean, low, high, n = prompt_accuracy(pred, target, seed=case.seed)
    rows = [MetricRow("prompt_accuracy", mean, "", n=n, ci_low=low, ci_high=high,
                      detail=f"share classified as the prompted class; {what}")]
    if untrained is not None:
        pred0 = ex.classify(untrained[[index[k] for k in named]]).numpy()
        mean, low, high, n = prompt_accuracy(pred0, target, seed=case.seed)
        rows.append(MetricRow("prompt_accuracy", mean, "", "untrained", n, low, high,
                              detail=f"same prompts and seeds, same architecture at initialisation; {what}"))
    labels = reference.get("test_labels")
    if labels is not None and reference.get("test_captions"):
        mean, low, high, n = prompt_accuracy(ex.classify(reference["test"]).numpy(), labels.numpy(), seed=case.seed)
        rows.append(MetricRow("prompt_accuracy", mean, "", "real-split", n, low, high,
                              detail=f"real held-out images and their own class: the classifier's ceiling; {what}"))
    return rows


def _distribution_rows(case, ctx, reference, ref_spec, fake, untrained, info) -> list[MetricRow]:
    """FID/KID of the generated images against the reference's test split, with real-split and untrained."""
    import torch

    from imgx.metrics.features import FeaturesUnavailable
    from imgx.tasks.generate import DEFAULT_FEATURES, _extractor, _score

    spec = case.spec
    ref_name = ref_spec.name
    metrics = [m for m in spec.metrics if m in ("fid", "kid")]
    rows: list[MetricRow] = []
    if not metrics:
        return rows
    test, train = reference["test"], reference.get("train")
    conversion = ""
    if test.shape[1] != fake.shape[1]:
        conversion = (f"reference has {test.shape[1]} channel(s), outputs {fake.shape[1]}: "
                      + ("the grey channel repeated to RGB" if test.shape[1] == 1 else "RGB converted to grey (mean)"))
        test = rgb(test) if test.shape[1] == 1 else test.mean(1, keepdim=True).repeat(1, fake.shape[1], 1, 1)
        if train is not None:
            train = rgb(train) if train.shape[1] == 1 else train.mean(1, keepdim=True).repeat(1, fake.shape[1], 1, 1)
    n = len(fake)
    split_rng = torch.Generator().manual_seed(case.seed)
    real_split = train[torch.randperm(len(train), generator=split_rng)[:n]] if train is not None else None
    sets = {"": fake, "real-split": real_split, "untrained": untrained}
    why_none = {"real-split": f"reference data {ref_name!r} has no train split to draw real images from",
                "untrained": "only for models trained here (weights: train): the same architecture before training"}
    notes: dict[str, str] = {}
    if real_split is not None and real_split.shape[-2:] != fake.shape[-2:]:
        # Outputs smaller (or larger) than the reference lose (or invent) detail however good the model: the same
        # real images at the outputs' size, embedded the same way, show what the resolution alone costs.
        h, w = fake.shape[-2:]
        sets["real-split-resized"] = torch.nn.functional.interpolate(
            real_split.float(), size=(h, w), mode="bilinear", antialias=True, align_corners=False).clamp(-1, 1)
        side = f"{real_split.shape[-1]}x{real_split.shape[-2]}"
        notes["real-split-resized"] = (f"; the real-split images resized from {side} to the outputs' {w}x{h} "
                                       "(bilinear, antialiased): what the resolution alone costs; not a strict "
                                       "floor, since a model's own data may be resampled otherwise")
    per_metric: dict[str, Any] = {}
    features: dict[tuple[int, str], np.ndarray] = {}
    for m in metrics:
        options = dict(spec.metric_options.get(m, {}))
        name = options.get("features", DEFAULT_FEATURES)
        too_few = n < FID_MIN_IMAGES or len(test) < FID_MIN_IMAGES
        if too_few:
            reason = (f"too few images for {m.upper()}: {n} generated, {len(test)} reference; imgx refuses below "
                      f"{FID_MIN_IMAGES} (raise samples or the number of prompts)")
            rows += [MetricRow(m, None, "", ref, status="unavailable", detail=reason) for ref in sets]
            continue
        try:
            ex = _extractor(name, options, reference, _on_data(case, ref_spec), ctx)
        except FeaturesUnavailable as exc:
            rows += [MetricRow(m, None, "", ref, status="unavailable", detail=str(exc)) for ref in sets]
            continue
        if ("test", id(ex)) not in features:
            features["test", id(ex)] = ex(test)
        per_ref = []
        for ref, images in sets.items():
            if images is None:
                rows.append(MetricRow(m, None, "", ref, status="unavailable", detail=why_none[ref]))
                continue
            if (ref, id(ex)) not in features:
                features[ref, id(ex)] = ex(images)
            row, ref_info = _score(m, ex, features["test", id(ex)], features[ref, id(ex)], ref, options, case.seed)
            row.detail += f"; reference={ref_name} test split" + (f"; {conversion}" if conversion else "")
            row.detail += notes.get(ref, "")
            rows.append(row)
            per_ref.append(ref_info)
        per_metric[m] = {**ex.describe(), "real_set": f"{ref_name} test split ({len(test)})", "samples": n,
                         "channel_rule": conversion or "same channel count", "references": per_ref}
    info["metrics"] = per_metric
    return rows


# ------------------------------------------------------------------------------------------------ the case
def run(case, ctx) -> CaseResult:
    """Run one text-to-image case; see the module docstring."""
    from imgx.models.protocol import uses_pipeline

    if not uses_pipeline(case.spec.model.name):  # a callable model (imgx.models.protocol): same outputs and metrics
        from imgx.tasks.user_callable import run_text_to_image

        return run_text_to_image(case, ctx)
    import torch

    from imgx.models.instruct_pix2pix import load_pipeline, set_scheduler
    from imgx.tasks.batched_sweep import note_for, text_to_image_outputs
    from imgx.tasks.batched_sweep import record as record_sweep

    spec, inf = case.spec, case.spec.inference
    data = load_data(spec.data, case.seed, ctx.resources)
    prompts, prompt_source = case_prompts(spec, data)
    n_samples = spec.samples or 1
    calls = make_samples(prompts, n_samples, case.seed)

    trained = None
    model_spec = spec.model
    if spec.model.weights == "train":
        trained = _train(case, ctx, data)
        model_spec = spec.model.model_copy(update={"weights": str(trained.folder)})
    loaded = load_pipeline(model_spec, case.device, ctx.cache_dir, ctx.resources, kind="text-to-image")
    set_scheduler(loaded, inf.scheduler)
    pipe = loaded.pipe
    size = None if trained is not None else spec.data.image_size  # trained: the size it was trained at
    call_kwargs = {"num_inference_steps": inf.num_inference_steps, "guidance_scale": inf.guidance_scale,
                   "height": size, "width": size, "output_type": "np"}

    def call(group: list[Sample]):
        generators = [torch.Generator("cpu").manual_seed(s.seed) for s in group]
        return pipe(prompt=group[0].prompt, num_images_per_prompt=len(group), generator=generators, **call_kwargs)

    sweep = text_to_image_outputs(case, ctx, loaded, calls, size)  # None: one pipeline call per prompt
    single_calls = sweep is None or "latency" in spec.metrics  # latency never comes from batched loops
    timed = timed_calls(calls, call, stage_modules(pipe, image_encode=False), device=case.device,
                        warmup=inf.warmup if single_calls else 0, repeats=inf.repeats if single_calls else 0,
                        progress=ctx.progress, desc=case.id, per_image=lambda group, j: group[j],
                        precomputed=None if sweep is None else list(zip(sweep.images, sweep.nsfw, strict=True)))
    samples: list[Sample] = [item for item, _, _ in timed.results]
    batch_points = {id(s): n for s, n in zip(samples, sweep.batch_points, strict=True)} if sweep else {}
    weights_label = "train" if trained is not None else loaded.info["weights"]

    def describe(s: Sample) -> tuple[list[Any], dict[str, Any]]:
        return [s.prompt, s.seed], {
            "prompt": s.prompt, "seed": s.seed, "input_path": "", "prompt_index": s.prompt_index,
            "sample": s.sample, "call_seeds": json.dumps(list(s.call_seeds)), "scheduler": inf.scheduler,
            "num_inference_steps": inf.num_inference_steps, "guidance_scale": inf.guidance_scale,
            "height": size or "", "width": size or "", "dtype": spec.model.dtype, "device": case.device,
            "generator_device": "cpu", "weights": weights_label, "model_path": loaded.info["path"],
            "batch_points": batch_points.get(id(s), 1)}

    outputs, arrays, valid, invalid = save_outputs(ctx, case.id, timed, describe)
    for o, a in zip(outputs, arrays, strict=True):
        o["height"], o["width"] = a.shape[:2]

    info: dict[str, Any] = {}
    rows: list[MetricRow] = []
    fake = to_tensor([arrays[k] for k in valid]) if valid else None
    untrained = None
    if trained is not None and valid and ({"fid", "kid", "prompt_accuracy"} & set(spec.metrics)):
        pipe0 = untrained_pipeline(Path(trained.folder), trained.info["recipe"], pipe.scheduler, case.device,
                                   ctx.resources)
        before = _sample(pipe0, calls, call_kwargs)
        untrained = to_tensor([before[k] for k in valid])
        info["untrained"] = ("the trained model's initial weights (built by the same code with the recipe's seed "
                             f"{trained.info['recipe']['seed']}, before its first training step), its tokenizer and "
                             f"the case's scheduler ({type(pipe.scheduler).__name__}); same prompts, seeds and "
                             "settings")
    ref_spec = spec.reference_data or spec.data
    reference = reference_data(case, ctx)
    if "clip_score" in spec.metrics:
        rows += _clip_rows(case, ctx, data, arrays, samples, valid, info, reference)
    if "prompt_accuracy" in spec.metrics:
        rows += _prompt_rows(case, ctx, fake, samples, valid, untrained, reference)
    if fake is not None:
        rows += _distribution_rows(case, ctx, reference, ref_spec, fake, untrained, info)
    elif {"fid", "kid"} & set(spec.metrics):
        rows += [MetricRow(m, None, status="failed", detail="no valid outputs") for m in ("fid", "kid")
                 if m in spec.metrics]
    if "latency" in spec.metrics:
        for row in latency_metric_rows(timed, device=case.device, steps=inf.num_inference_steps,
                                       images_per_call=n_samples):
            if row.metric.startswith("latency_ms_p"):
                row.detail += f"; one call = one prompt, {n_samples} image(s)"
            rows.append(row)
    rows += diffusion_cost_rows(case, pipe, lambda: call(calls[0]), images=len(calls[0]),
                                sweep_info=sweep and sweep.info)

    history: list[dict[str, Any]] = []
    artifacts: dict[str, Any] = {}
    if trained is not None:
        history = _history(trained.history)
        artifacts["model"] = _copy_model(ctx, Path(trained.folder))
        seconds = trained.info.get("train_seconds")
        if seconds:
            recipe = trained.info.get("recipe", {})
            # The VAE may stop before its cap (a reconstruction target): count the epochs it ran.
            vae_epochs = trained.info.get("vae_epochs_run", recipe.get("vae_epochs", 0))
            epochs = int(recipe.get("epochs", spec.train.epochs)) + int(vae_epochs)
            n_img = int(trained.info.get("train_images", len(data["train"]))) * epochs
            # The first case of this run to get the folder trained it (or took it from the cache): later sweep
            # points spent 0 s training and say who did.
            by = ctx.resources.setdefault(("trained-by", str(trained.folder)), case.id)
            if by != case.id:
                detail, throughput = f"reused, trained by {by} earlier in this run ({seconds:.1f} s), 0 s here", \
                    f"of the training by {by}: "
                rows.append(MetricRow("train_seconds", 0.0, "s", n=epochs, detail=detail))
            else:
                reused = " (reused from the imgx cache; the time of the original training)" if trained.reused else ""
                rows.append(MetricRow("train_seconds", seconds, "s", n=epochs,
                                      detail=f"trained here: VAE then denoiser epochs{reused}"))
                throughput = ""
            rows.append(MetricRow("train_images_per_second", n_img / seconds, "img/s", n=n_img,
                                  detail=f"{throughput}images seen in VAE and denoiser epochs per second"))

    n_invalid = sum(invalid.values())
    status, detail = invalid_verdict(invalid, len(outputs), spec.max_invalid)
    detail = record_sweep(sweep, rows, info, detail, note_for(case, ctx))
    info.update({
        "model": dict(loaded.info),
        "random_weights": bool(loaded.info.get("random_weights")),
        "prompts": prompts, "prompt_source": prompt_source, "samples_per_prompt": n_samples,
        "reference_data": ref_spec.model_dump(exclude_none=True),
        "scheduler": inf.scheduler, "scheduler_class": type(pipe.scheduler).__name__,
        "dtype": spec.model.dtype, "device": case.device, "torch_threads": torch.get_num_threads(),
        "generator_device": "cpu", "data": data.get("info", {}), "outputs": len(outputs), "valid_outputs": len(valid),
        "invalid_outputs": n_invalid, "invalid_reasons": invalid, "timing": timing_info(timed, case.device),
    })
    if trained is not None:
        info["trained"] = {"folder": str(trained.folder), "copy": artifacts["model"], "reused": trained.reused,
                           **{k: v for k, v in trained.info.items() if k not in ("history", "files")}}
        info["label"] = (f"micro Stable Diffusion trained here on {spec.data.name} image-caption pairs "
                         f"({spec.train.epochs} epochs); not a published model")
    elif info["random_weights"]:
        info["label"] = "random-weight pipeline (weights: tiny): images are noise-like, figures test plumbing only"
    artifacts.update(_grid(ctx, case, prompts, samples, arrays, outputs))
    return CaseResult(status=status, detail=detail, rows=rows, history=history, outputs=outputs,
                      artifacts=artifacts, info=info)


def _history(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trainer's per-stage rows on one epoch axis: VAE epochs first, then denoiser epochs.

    Each stage's epochs restart at 1 in the trainer; here ``epoch`` counts on across stages (``stage_epoch`` keeps
    the stage's own) and ``loss`` becomes ``<stage>_loss`` so that the report draws one curve per stage.
    """
    out = []
    for i, row in enumerate(rows, start=1):
        stage = str(row.get("stage", "train"))
        new = {"epoch": i, "stage": stage, "stage_epoch": row.get("epoch")}
        new.update({(f"{stage}_loss" if k == "loss" else k): v for k, v in row.items() if k not in ("epoch", "stage")})
        out.append(new)
    return out


def _grid(ctx, case, prompts, samples, arrays, outputs) -> dict[str, Any]:
    """A sample grid: one row per prompt (at most ``GRID_PROMPTS``), up to ``GRID_SAMPLES`` images each."""
    from imgx.imageio import grid

    rows, labels = [], []
    for i, prompt in enumerate(prompts[:GRID_PROMPTS]):
        row = [arrays[k] for k, s in enumerate(samples) if s.prompt_index == i][:GRID_SAMPLES]
        if row and all(r.shape == row[0].shape for r in row) and (not rows or row[0].shape == rows[0][0].shape):
            rows.append(np.stack(row))
            labels.append(prompt)
    if not rows:
        return {"outputs": [o["path"] for o in outputs]}
    scale = max(1, 64 // rows[0].shape[1])
    path = ctx.save_image(grid(rows, scale=scale), case.id, "grid")
    return {"grid": path, "grid_rows": labels, "outputs": [o["path"] for o in outputs]}


def reference_data(case, ctx) -> dict[str, Any]:
    """The case's reference images (``reference_data`` or ``data``), loaded only when a metric reads them (FID/KID,
    or captioned data for the real-split rows of clip_score and prompt_accuracy): 512 px photo crops are large."""
    spec = case.spec
    ref_spec = spec.reference_data or spec.data
    wants = set(spec.metrics)
    if {"fid", "kid"} & wants or (DATASETS.meta(ref_spec.name).get("captions") and {"clip_score", "prompt_accuracy"}
                                  & wants):
        return load_data(ref_spec, case.seed, ctx.resources)
    return {}
