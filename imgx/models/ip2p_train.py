"""``model: {name: instruct-pix2pix, weights: train}``: an InstructPix2Pix trained here on ``photo-edits``.

The training split of ``photo-edits`` (inputs, exact targets, instructions) goes to
:func:`imgx.models.trained.trained_diffusion`, which trains a micro VAE, an 8-channel UNet, a text encoder and
a tokenizer (the paper's recipe), saves a diffusers folder cached by recipe and data hash, and returns it; the
case then loads that folder through the ordinary loader (``model.weights`` = the folder). With
``metric_options.<clip metric>.model: train`` a small CLIP is trained here on the same split's captions.
Everything made here says so in the case's ``info`` and rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from imgx.results import MetricRow

TRAIN = "train"  # the model.weights / metric_options.<m>.model value that asks for training here
CLIP_METRICS = ("clip_score", "clip_image_similarity", "clip_directional_similarity")
CLIP_RECIPE = {"epochs": 30, "batch_size": 64, "lr": 2.0e-3}


@dataclass
class TrainedEdit:
    """What training here gives an edit case: the spec to run with and the provenance to report."""

    spec: Any  # a CaseSpec copy: model.weights and CLIP models replaced by the trained folders
    history: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    rows: list[MetricRow] = field(default_factory=list)
    instructions: frozenset[str] = frozenset()
    label: str = ""
    trained_pipeline: bool = False


def wants_training(spec) -> bool:
    """True when the case asks for an InstructPix2Pix or a CLIP model trained here."""
    return spec.model.weights == TRAIN or any(
        str(spec.metric_options.get(m, {}).get("model", "")) == TRAIN for m in CLIP_METRICS)


def training_split(spec, data: dict[str, Any], seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``photo-edits`` training split: the case's own when its data is photo-edits, else the defaults at
    the case's image size. Returns ``(train, info)``."""
    if "train" in data:
        return data["train"], data.get("info", {})
    from imgx.data.photo_edits import load
    from imgx.suite.schema import DataSpec

    other = load(DataSpec(name="photo-edits", image_size=spec.data.image_size), seed, "edit")
    return other["train"], other["info"]


def prepare_trained(case, ctx, data: dict[str, Any]) -> TrainedEdit | None:
    """Train (or reuse) what the case asks for; None when it asks for nothing trained here."""
    spec = case.spec
    if not wants_training(spec):
        return None
    train, data_info = training_split(spec, data, case.seed)
    n, k = len(train["inputs"]), len(set(train["instructions"]))
    out = TrainedEdit(spec=spec.model_copy(deep=True), instructions=frozenset(train["instructions"]))
    if spec.model.weights == TRAIN:
        model = _memo(ctx, ("ip2p", spec.train.model_dump_json(), repr(data_info), case.seed, case.device),
                      lambda: {**_train_pipeline(spec, case, ctx, train), "trained_by": case.id})
        by = model["trained_by"] if model["trained_by"] != case.id else None  # another sweep point trained it
        out.spec.model.weights = str(model["folder"])
        out.history, out.trained_pipeline = list(model["history"]), True
        out.label = f"trained here on photo-edits ({n} crops, {k} instructions)"
        out.info["trained"] = {"label": out.label, "recipe": spec.train.model_dump(), "train_photos":
                               data_info.get("train_photos"), "image_size": data_info.get("image_size"),
                               "reused_from_cache": model["reused"], "folder": str(model["folder"]),
                               **({"reused_in_run_from": by} if by else {}),
                               **{f"model_{key}": v for key, v in model["info"].items()
                                  if key not in ("history", "files")}}  # history is the case's; hashes stay on disk
        seconds = model["seconds"]
        if by:  # this case spent no time training: say so, and who did
            detail = (f"reused, trained by {by} earlier in this run ({seconds:.1f} s), 0 s here; the model: "
                      f"{out.label}")
            seconds = 0.0
        elif model["reused"]:
            detail = f"reused from the imgx cache (its original training time); the model: {out.label}"
        else:
            detail = out.label
        out.rows.append(MetricRow("train_seconds", seconds, "s", n=spec.train.epochs, detail=detail))
    clip_metrics = [m for m in CLIP_METRICS if str(spec.metric_options.get(m, {}).get("model", "")) == TRAIN]
    if clip_metrics:
        clip = _memo(ctx, ("clip", repr(data_info), case.seed, case.device), lambda: _train_clip(case, ctx, train))
        for m in clip_metrics:
            out.spec.metric_options[m]["model"] = str(clip["folder"])
        out.info["clip_trained"] = {"label": f"CLIP trained here on photo-edits captions ({clip['images']} "
                                             "images: training inputs and targets with their captions)",
                                    "metrics": clip_metrics, "recipe": CLIP_RECIPE, "folder": str(clip["folder"]),
                                    "reused_from_cache": clip["reused"],
                                    **{key: v for key, v in clip["info"].items() if key not in ("history", "files")}}
    return out


def _memo(ctx, key: tuple, make) -> dict[str, Any]:
    """One training per run for a recipe (the sweep's cases share it); the disk cache spans runs."""
    key = ("trained-edit",) + key
    if key not in ctx.resources:
        ctx.resources[key] = make()
    return ctx.resources[key]


def _tensor(arrays):
    from imgx.imageio import array_to_tensor

    return array_to_tensor(arrays)


def _train_pipeline(spec, case, ctx, train: dict[str, Any]) -> dict[str, Any]:
    from imgx.models.trained import trained_diffusion

    t0 = time.perf_counter()
    model = trained_diffusion("instruct-pix2pix", images=_tensor(train["targets"]), captions=train["instructions"],
                              cond_images=_tensor(train["inputs"]), epochs=spec.train.epochs,
                              batch_size=spec.train.batch_size, lr=spec.train.lr, seed=case.seed,
                              cache_dir=ctx.cache_dir, progress=ctx.progress, device=case.device,
                              data_label="photo-edits crops (input, instruction, exact target)")
    seconds = time.perf_counter() - t0
    info = dict(model.info)
    if model.reused:  # the time it took when it was trained, if the cache recorded it
        seconds = info.get("train_seconds", seconds)
    return {"folder": model.folder, "history": model.history, "info": info, "reused": model.reused,
            "seconds": float(seconds)}


def _train_clip(case, ctx, train: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from imgx.models.trained import trained_clip

    images = np.concatenate([train["inputs"], train["targets"]])
    captions = list(train["input_captions"]) + list(train["output_captions"])
    model = trained_clip(images=_tensor(images), captions=captions, seed=case.seed, cache_dir=ctx.cache_dir,
                         progress=ctx.progress, device=case.device, data_label="photo-edits crops and captions",
                         **CLIP_RECIPE)
    return {"folder": model.folder, "info": dict(model.info), "reused": model.reused, "images": len(images)}


def annotate_trained(trained: TrainedEdit, pairs, outputs: list[dict[str, Any]], rows: list[MetricRow],
                     info: dict[str, Any], detail: str) -> str:
    """Add training rows and provenance to a finished case, flag prompts outside the trained instruction set
    (run anyway: the model is what it is), and return the case detail with the label in front."""
    rows.extend(trained.rows)
    info.update(trained.info)
    parts = [trained.label] if trained.label else []
    if trained.trained_pipeline:
        info["label"] = trained.label
        for o in outputs:
            o["in_training_set"] = o["prompt"] in trained.instructions
        outside = sorted({p.prompt for p in pairs if p.prompt not in trained.instructions})
        if outside:
            info["prompts_outside_training_set"] = outside
            parts.append(f"{len(outside)} prompt(s) outside the trained instruction set, run anyway: "
                         + "; ".join(repr(p) for p in outside[:5]))
    if "clip_trained" in info:
        for row in rows:
            if row.metric in info["clip_trained"]["metrics"]:
                row.detail += "; " + info["clip_trained"]["label"]
    return "; ".join(parts + ([detail] if detail else []))
