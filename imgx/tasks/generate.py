"""The ``generate`` task: train a DCGAN to fixed epochs, then score its samples with FID and KID.

The model is what :mod:`imgx.models.protocol` builds for the suite's name (DCGAN, or a user's generator with
``latent_dim``); ``model.checkpoint`` loads trained weights and skips training.

Steps: load the data (train/test with labels), build the feature extractors the metrics ask for, train with
a per-epoch hook (fixed-noise sample grid, class coverage and diversity: the mode-collapse signal), then
score ``samples`` generated images against the test split, next to two references: ``untrained`` (the same
generator before training: the ceiling) and ``real-split`` (real training images against the held-out test
images: the floor). Every FID/KID row says which extractor, weights hash, sample counts and resize mode.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from typing import Any

import numpy as np
import torch

from imgx.data import DATASETS
from imgx.imageio import grid, tensor_to_array
from imgx.metrics.cost import case_cost_rows
from imgx.metrics.features import (
    DigitsClassifierFeatures,
    ExtractorContext,
    FeatureExtractor,
    FeaturesUnavailable,
    build_extractor,
    cache_key,
)
from imgx.metrics.frechet import KidTooFewSamples, fid_from_features, kid_from_features
from imgx.models.dcgan import GeneratorSampling
from imgx.models.protocol import ModelError, build, check_images, load_checkpoint, origin, save_checkpoint
from imgx.results import CaseResult, MetricRow
from imgx.train.adversarial import fit_gan

log = logging.getLogger("imgx")

DEFAULT_FEATURES = "digits-classifier"
GRID_SIDE = 8  # the per-epoch grid is 8x8 samples from fixed noise
MONITOR_SAMPLES = 256  # fixed-noise samples for the per-epoch coverage/diversity signal
REFERENCES = ("", "untrained", "real-split")


def _extractor(name: str, options: dict[str, Any], data: dict[str, Any], case, ctx) -> FeatureExtractor:
    """Build (or reuse from ``ctx.resources``) an extractor; options that only concern scoring are dropped."""
    build_opts = {k: v for k, v in options.items() if k in ("weights", "seed")}
    key = cache_key(name, build_opts) + "|" + case.spec.data.model_dump_json() + "|" + case.device
    if key not in ctx.resources:
        context = ExtractorContext(data=data, seed=case.seed, cache_dir=ctx.cache_dir, device=case.device)
        ctx.resources[key] = build_extractor(name, build_opts, context)
    return ctx.resources[key]


def pairwise_diversity(images: torch.Tensor) -> float:
    """Mean pairwise L2 distance between flattened images ``(N, C, H, W)`` (distinct pairs only)."""
    x = images.flatten(1).double()
    n = len(x)
    if n < 2:
        return float("nan")
    d = torch.cdist(x, x)
    return float(d.sum() / (n * (n - 1)))


def class_signal(classes: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Mode-collapse signal from predicted classes ``(N,)``.

    ``class_coverage``: share of classes that get at least half their fair share (``0.5 / K``) of samples;
    ``class_entropy``: entropy of the predicted-class histogram over ``log K`` (1 = perfectly balanced).
    """
    counts = torch.bincount(classes.long(), minlength=num_classes).double()
    share = counts / counts.sum()
    nz = share[share > 0]
    entropy = float(-(nz * nz.log()).sum() / math.log(num_classes)) if num_classes > 1 else 1.0
    return {"class_coverage": float((share >= 0.5 / num_classes).double().mean()), "class_entropy": entropy}


def _describe(ex: FeatureExtractor) -> str:
    d = ex.describe()
    return f"extractor={d['extractor']} dim={d['dim']} weights={d['weights_hash'] or 'n/a'} resize={d['resize']}"


def _score(metric: str, ex: FeatureExtractor, real_feats: np.ndarray, fake_feats: np.ndarray, reference: str,
           options: dict[str, Any], seed: int) -> tuple[MetricRow, dict[str, Any]]:
    """One FID or KID row (and its provenance for ``info``); failures become ``failed`` rows with the reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # recorded in the result's .warnings and written into the detail
            if metric == "fid":
                r = fid_from_features(real_feats, fake_feats, bootstrap=int(options.get("bootstrap",
                                      50 if ex.dim <= 256 else 10)), seed=seed)
                extra = f"ci=bootstrap B={r.resamples}, bias-shifted percentile"
                row = MetricRow("fid", r.value, "", reference, r.n_fake, r.ci_low, r.ci_high)
            else:
                r = kid_from_features(real_feats, fake_feats, subsets=int(options.get("subsets", 100)),
                                      subset_size=options.get("subset_size"), degree=int(options.get("degree", 3)),
                                      seed=seed)
                extra = (f"subsets={r.subsets} subset_size={r.subset_size} std={r.std:.6g} "
                         "ci=2.5-97.5 percentile of subset estimates")
                row = MetricRow("kid", r.value, "", reference, r.n_fake, r.ci_low, r.ci_high)
    except KidTooFewSamples as exc:  # not an error of the model: the case asked for too few samples
        return MetricRow(metric, None, "", reference, status="unavailable", detail=f"{_describe(ex)}: {exc}"), {}
    except ValueError as exc:
        return MetricRow(metric, None, "", reference, status="failed", detail=f"{_describe(ex)}: {exc}"), {}
    row.ci_low, row.ci_high = (c if c is not None and math.isfinite(c) else None for c in (row.ci_low, row.ci_high))
    detail = f"{_describe(ex)} real={r.n_real} fake={r.n_fake} {extra}"
    if r.warnings:
        detail += " WARNING: " + "; ".join(r.warnings)
    row.detail = detail
    info = {"reference": reference or "model", "n_real": r.n_real, "n_fake": r.n_fake, "warnings": r.warnings}
    return row, info


def _grid(images: torch.Tensor, side: int) -> np.ndarray:
    arr = tensor_to_array(images[:side * side])
    rows = [arr[i:i + side] for i in range(0, len(arr), side)]
    return grid(rows, scale=max(1, 56 // images.shape[-1]))


def run(case, ctx) -> CaseResult:
    """Train the case's DCGAN and score it; see the module docstring."""
    spec = case.spec
    data = DATASETS.get(spec.data.name)(spec.data, case.seed, "generate")
    train, test = data["train"], data["test"]
    n_samples = spec.samples or len(test)
    metrics = [m for m in spec.metrics if m in ("fid", "kid")]
    # Unknown option keys were refused when the suite was loaded (imgx.suite.load).
    options = {m: dict(spec.metric_options.get(m, {})) for m in metrics}

    # Extractors first: the digits classifier also gives the per-epoch coverage signal during training.
    extractors: dict[str, FeatureExtractor | str] = {}
    for m in metrics:
        name = options[m].get("features", DEFAULT_FEATURES)
        try:
            extractors[m] = _extractor(name, options[m], data, case, ctx)
        except FeaturesUnavailable as exc:
            extractors[m] = str(exc)
    monitor = next((e for e in extractors.values() if isinstance(e, DigitsClassifierFeatures)), None)
    if monitor is None:
        try:
            monitor = _extractor("digits-classifier", {}, data, case, ctx)
        except FeaturesUnavailable as exc:
            log.info("no class-coverage signal for %s: %s", case.id, exc)
    num_classes = int(data["train_labels"].max()) + 1 if data.get("train_labels") is not None else 0

    torch.manual_seed(case.seed)  # the model's initial weights depend on the case seed only
    channels, size = train.shape[1], train.shape[-1]
    name = spec.model.name
    built = build(case, "generate", image_size=size, channels=channels)
    model = Gan(built)
    untrained = copy.deepcopy(model.generator).eval()
    checkpoint = spec.model.checkpoint
    if checkpoint:
        load_checkpoint(built if isinstance(built, torch.nn.Module) else model.generator, checkpoint, name)
        model.to(case.device)
    elif model.discriminator is None:
        raise ModelError(f"model {origin(name)} has no discriminator: imgx cannot train it (give model.checkpoint "
                         "to evaluate trained weights)")
    noise_rng = torch.Generator().manual_seed(case.seed ^ 0x5EED)
    grid_noise = model.noise(GRID_SIDE * GRID_SIDE, noise_rng)
    eval_noise = model.noise(n_samples, noise_rng)
    monitor_noise = eval_noise[:MONITOR_SAMPLES]
    real_diversity = pairwise_diversity(test[:MONITOR_SAMPLES])  # nan with < 2 test images
    epoch_grids: list[str] = []

    def on_epoch(epoch: int) -> dict[str, Any]:
        path = ctx.save_image(_grid(model.sample(grid_noise), GRID_SIDE), case.id, "epoch", f"{epoch:04d}")
        epoch_grids.append(path)
        samples = model.sample(monitor_noise)
        diversity = pairwise_diversity(samples) / real_diversity if real_diversity > 0 else float("nan")
        row: dict[str, Any] = {"diversity": diversity if math.isfinite(diversity) else None, "grid": path}
        if monitor is not None and num_classes > 1:
            row.update(class_signal(monitor.classify(samples), num_classes))
        return row

    check_images(model.sample(grid_noise[:2]), (2, channels, size, size), name, "samples")
    t0 = time.perf_counter()
    history = [] if checkpoint else fit_gan(model, train, epochs=spec.train.epochs, batch_size=spec.train.batch_size,
                                            lr=spec.train.lr, seed=case.seed, device=case.device, on_epoch=on_epoch,
                                            progress=ctx.progress)
    # Training time proper: the per-epoch hooks (grids, coverage) are excluded, as fit_gan's rows exclude them.
    train_seconds = sum(h["seconds"] for h in history)
    hook_seconds = time.perf_counter() - t0 - train_seconds

    fake = model.sample(eval_noise)
    check_images(fake, (len(eval_noise), channels, size, size), name, "samples")
    z = eval_noise[:64].to(case.device)
    cost = case_cost_rows(case, lambda: model.sample(z), {"generator": [model.generator]}, images=len(z))
    with torch.no_grad():
        before = torch.cat([untrained(eval_noise[i:i + 512]) for i in range(0, len(eval_noise), 512)])
    split_rng = torch.Generator().manual_seed(case.seed)
    real_split = train[torch.randperm(len(train), generator=split_rng)[:min(n_samples, len(train))]]
    sets = {"": fake, "untrained": before, "real-split": real_split}

    rows: list[MetricRow] = []
    metric_info: dict[str, Any] = {}
    features: dict[tuple[int, str], np.ndarray] = {}  # FID and KID on one extractor embed each set once

    def embed(ex: FeatureExtractor, name: str, images: torch.Tensor) -> np.ndarray:
        if (id(ex), name) not in features:
            features[id(ex), name] = ex(images)
        return features[id(ex), name]

    for m in metrics:
        ex = extractors[m]
        if isinstance(ex, str):
            rows += [MetricRow(m, None, "", ref, status="unavailable", detail=ex) for ref in REFERENCES]
            metric_info[m] = {"status": "unavailable", "reason": ex}
            continue
        real_feats = embed(ex, "test", test)
        per_ref = []
        for ref in REFERENCES:
            row, info = _score(m, ex, real_feats, embed(ex, ref or "model", sets[ref]), ref, options[m], case.seed)
            rows.append(row)
            per_ref.append(info)
        metric_info[m] = {**ex.describe(), "real_set": f"test split ({len(test)})", "samples": n_samples,
                          "references": per_ref}

    rows += cost
    if not checkpoint:
        images = len(train) * spec.train.epochs
        rows.append(MetricRow("train_seconds", train_seconds, "s", n=spec.train.epochs))
        rows.append(MetricRow("train_images_per_second", images / train_seconds, "img/s", n=images))

    final = ctx.save_image(_grid(fake, GRID_SIDE), case.id, "samples")
    before_grid = ctx.save_image(_grid(before, GRID_SIDE), case.id, "untrained")
    real_grid = ctx.save_image(_grid(test, GRID_SIDE), case.id, "real")
    final_row = history[-1] if history else {}
    info = {
        "data": data["info"],
        "samples": n_samples,
        "metrics": metric_info,
        "model": origin(name),
        "parameters": {"generator": sum(p.numel() for p in model.generator.parameters()),
                       "discriminator": sum(p.numel() for p in model.discriminator.parameters())
                       if model.discriminator is not None else None},
        "latent_dim": model.latent_dim,
        "noise": "standard normal, torch.Generator seeded with case seed ^ 0x5EED",
        "torch_threads": torch.get_num_threads(),
        "epoch_hook_seconds": round(hook_seconds, 3),
        "train_images": len(train),
        "real_diversity": real_diversity if math.isfinite(real_diversity) else None,
        "final_class_coverage": final_row.get("class_coverage"),
        "coverage_classifier": monitor.describe() if monitor is not None else None,
    }
    artifacts = {"samples": final, "untrained": before_grid, "real": real_grid, "samples_per_epoch": epoch_grids}
    if checkpoint:
        info.update(checkpoint=checkpoint, trained="loaded from model.checkpoint and evaluated as is (not trained "
                                                   "here); untrained: the same model as built, before loading")
    else:
        artifacts["checkpoint"] = save_checkpoint(ctx, case, built if isinstance(built, torch.nn.Module) else
                                                  model.generator)
    return CaseResult(
        rows=rows,
        history=history,
        outputs=[{"prompt": "", "seed": case.seed, "input_path": "", "path": final, "kind": "samples",
                  "count": GRID_SIDE * GRID_SIDE}],
        artifacts=artifacts,
        info=info,
    )


class Gan(GeneratorSampling, torch.nn.Module):
    """A model of the generate protocol (:class:`~imgx.models.protocol.GenerativeModel`) with the noise and sampling
    that imgx's GAN loop and scoring use: standard-normal noise drawn on the CPU, samples in eval mode."""

    def __init__(self, model: Any):
        super().__init__()
        self.latent_dim = int(model.latent_dim)
        self.generator = model.generator
        self.discriminator = getattr(model, "discriminator", None)
