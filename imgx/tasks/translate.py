"""The ``translate`` task: train pix2pix (paired) or CycleGAN (unpaired) to fixed epochs, score on held-out crops.

The model is what :mod:`imgx.models.protocol` resolves: pix2pix and CycleGAN are trained by their adversarial loops;
any other module A -> B (a user's, by import path or entry point) by imgx's supervised loop on pairs.
``model.checkpoint`` loads trained weights (safetensors) and skips training.

Steps: load the data (train/test A and B), build the model from the data's shapes, keep a copy of its
generator(s) before training (the ``untrained`` reference), train with a per-epoch hook that saves a sample
grid from fixed test inputs, then score A→B on the test split next to two references: ``identity`` (the input
copied through: what a model that learned nothing but the copy would score) and ``untrained``.

- Paired data (``photo-pairs``, ``folder-pairs``): ``mse`` / ``psnr`` / ``ssim`` against the exact target.
- Unpaired data (``photo-styles``): ``target_mse`` / ``target_psnr`` / ``target_ssim`` against the style's
  known truth of each test A (never seen in training), and for CycleGAN the cycle errors ``cycle_mse_aba`` /
  ``cycle_mse_bab``.
- ``fid`` / ``kid`` of A→B against the real test B in ``efficientnet-lite0`` features by default (offline,
  optional extra; labelled not comparable to Inception FID); ``unavailable`` rows with the reason without it.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from imgx.data import DATASETS
from imgx.errors import DataError
from imgx.imageio import grid, tensor_to_array, to_unit
from imgx.metrics import metric_info
from imgx.metrics.cost import case_cost_rows
from imgx.metrics.features import FeatureExtractor, FeaturesUnavailable
from imgx.metrics.pixel import PIXEL_METRICS
from imgx.metrics.stats import mean_with_ci
from imgx.models import MODELS
from imgx.models.protocol import build, check_images, load_checkpoint, origin, save_checkpoint
from imgx.results import CaseResult, MetricRow
from imgx.tasks.colorize import probe
from imgx.tasks.generate import _extractor, _score
from imgx.train.supervised import fit, predict

DEFAULT_FEATURES = "efficientnet-lite0"
REFERENCES = ("", "identity", "untrained")
GRID_IMAGES = 8
PAIRED = ("mse", "psnr", "ssim")
TARGET = ("target_mse", "target_psnr", "target_ssim")


def as_rgb(images: torch.Tensor, channels: int) -> torch.Tensor:
    """The input copied through to the target's channels (gray repeated): the ``identity`` reference."""
    return images.expand(-1, channels, -1, -1) if images.shape[1] == 1 and channels != 1 else images


def pixel_rows(name: str, pred: torch.Tensor, truth: torch.Tensor, reference: str, seed: int, detail: str,
               kind: str | None = None) -> MetricRow:
    """One pixel metric row (``mse``, ``target_ssim``...): the mean over images with a bootstrap CI, on ``[0, 1]``.

    ``kind`` is the pixel metric computed (``mse``, ``psnr``, ``ssim``); by default the name without ``target_``.
    """
    values = PIXEL_METRICS[kind or name.removeprefix("target_")](to_unit(pred), to_unit(truth)).numpy()
    mean, low, high, n = mean_with_ci(values, seed=seed)
    return MetricRow(name, mean, metric_info(name).unit, reference, n, low, high, detail=detail)


def _grid(rows: list[torch.Tensor], channels: int) -> np.ndarray:
    return grid([tensor_to_array(as_rgb(r[:GRID_IMAGES], channels)) for r in rows],
                scale=max(1, 96 // rows[0].shape[-1]))


def run(case, ctx) -> CaseResult:
    """Train the case's translation model and score it; see the module docstring."""
    from imgx.train.translation import fit_cyclegan, fit_pix2pix

    spec = case.spec
    data = DATASETS.get(spec.data.name)(spec.data, case.seed, "translate")
    train_a, train_b, test_a, test_b = data["train_a"], data["train_b"], data["test_a"], data["test_b"]
    paired = bool(data["paired"])
    truth = test_b if paired else data["test_b_true"]
    cb = train_b.shape[1]
    torch.manual_seed(case.seed)  # initial weights depend on the case seed only
    trainer = trainer_of(spec.model.name)
    cyclegan = trainer == "cyclegan"
    if trainer == "supervised" and not paired:
        raise DataError(f"model {origin(spec.model.name)} trains on pairs with imgx's supervised loop; data "
                        f"{spec.data.name!r} is unpaired")
    ca, size = train_a.shape[1], train_a.shape[-1]
    model = build(case, "translate", in_channels=ca, out_channels=cb, channels_a=ca, channels_b=cb, image_size=size)
    if trainer == "supervised":  # a module A -> B (imgx.models.protocol): one forward pass checks it first
        probe(model, test_a[:2], tuple(truth.shape[1:]), spec.model.name)
    g_ab = {"cyclegan": lambda m: m.g_ab, "pix2pix": lambda m: m.generator}.get(trainer, lambda m: m)
    untrained = copy.deepcopy(model).eval()
    u_ab, g_ab = g_ab(untrained), g_ab(model)
    fixed_a = test_a[:GRID_IMAGES]
    epoch_grids: list[str] = []

    def on_epoch(epoch: int) -> dict[str, Any]:
        out = predict(g_ab, fixed_a, device=case.device)
        rows = [fixed_a, out, truth[:GRID_IMAGES]]
        if cyclegan:
            rows.append(predict(model.g_ba, out, device=case.device))
        path = ctx.save_image(_grid(rows, cb), case.id, "epoch", f"{epoch:04d}")
        epoch_grids.append(path)
        return {"grid": path}

    train = dict(epochs=spec.train.epochs, batch_size=spec.train.batch_size, lr=spec.train.lr, seed=case.seed,
                 device=case.device, on_epoch=on_epoch, progress=ctx.progress)
    checkpoint = spec.model.checkpoint
    if checkpoint:
        load_checkpoint(model, checkpoint, spec.model.name)
        model.to(case.device)
        history, images = [], 0
    elif trainer == "supervised":
        history = fit(model, train_a, train_b, epochs=spec.train.epochs, batch_size=spec.train.batch_size,
                      lr=spec.train.lr, seed=case.seed, device=case.device, progress=ctx.progress,
                      test=(test_a, truth))
        images = len(train_a) * spec.train.epochs
    elif cyclegan:
        # The identity loss feeds B to G_AB: it needs A and B to have the same channels (the reference code's rule).
        history = fit_cyclegan(model, train_a, train_b, lambda_identity=None if train_a.shape[1] == cb else 0.0,
                               **train)
        per_epoch = max(len(train_a), len(train_b)) // min(spec.train.batch_size, len(train_a), len(train_b))
        images = per_epoch * min(spec.train.batch_size, len(train_a), len(train_b)) * spec.train.epochs
    else:
        history = fit_pix2pix(model, train_a, train_b, **train)
        bs = min(spec.train.batch_size, len(train_a))
        images = max(1, len(train_a) // bs) * bs * spec.train.epochs
    # Training time proper: the per-epoch grids are excluded, as the loops' rows exclude them.
    train_seconds = sum(h["seconds"] for h in history)

    outputs = {"": predict(g_ab, test_a, device=case.device), "identity": as_rgb(test_a, cb),
               "untrained": predict(u_ab, test_a, device=case.device)}
    rows: list[MetricRow] = []
    family, other = (PAIRED, TARGET) if paired else (TARGET, PAIRED)
    what = "the exact target" if paired else f"the known {data['info'].get('style', '')} truth (never trained on)"
    for name in spec.metrics:
        if name in family:
            rows += [pixel_rows(name, outputs[ref], truth, ref, case.seed, f"A->B vs {what}; data_range=1.0 on [0,1]")
                     for ref in REFERENCES]
        elif name in other:
            reason = ("paired data: mse/psnr/ssim score against the exact target" if paired else
                      "unpaired data has no target pairs: target_mse/target_psnr/target_ssim score against the "
                      "style's known truth")
            rows += [MetricRow(name, None, "", ref, status="unavailable", detail=reason) for ref in REFERENCES]
    if cyclegan:
        detail = ("MSE of the round trip on [0,1]; no identity reference (copying the input is a perfect cycle by "
                  "construction)")
        for name, x, there, back in (("cycle_mse_aba", test_a, "g_ab", "g_ba"),
                                     ("cycle_mse_bab", test_b, "g_ba", "g_ab")):
            for ref, net in (("", model), ("untrained", untrained)):
                rec = predict(getattr(net, back), predict(getattr(net, there), x, device=case.device),
                              device=case.device)
                rows.append(pixel_rows(name, rec, x, ref, case.seed, detail, kind="mse"))
    check_images(outputs[""], (len(test_a), *truth.shape[1:]), spec.model.name)
    rows += _distribution_rows(case, ctx, data, test_b, outputs)
    x = test_a[:64].to(case.device)
    rows += case_cost_rows(case, lambda: g_ab(x), {"generator": [g_ab]}, images=len(x))
    if not checkpoint:
        rows.append(MetricRow("train_seconds", train_seconds, "s", n=spec.train.epochs))
        rows.append(MetricRow("train_images_per_second", images / train_seconds, "img/s", n=images))

    final_rows = [fixed_a, outputs[""][:GRID_IMAGES], truth[:GRID_IMAGES], outputs["untrained"][:GRID_IMAGES]]
    final = ctx.save_image(_grid(final_rows, cb), case.id, "grid")
    info = {"data": data["info"], "model": _model_info(spec, model, train_a.shape[1] == cb, trainer),
            "trained": f"trained here, from scratch, on {spec.data.name} for {spec.train.epochs} epochs",
            "torch_threads": torch.get_num_threads(), "train_images": len(train_a), "paired": paired}
    extra = {}
    if checkpoint:
        info["trained"] = "loaded from model.checkpoint and evaluated as is (not trained here)"
        info["checkpoint"] = checkpoint
    else:
        extra["checkpoint"] = save_checkpoint(ctx, case, model)
    return CaseResult(
        rows=rows,
        history=history,
        artifacts={"grid": final, "grid_rows": ["input A", "A->B (trained here)", "target B" if paired else
                                                "true B (hidden)", "untrained"],
                   "samples_per_epoch": epoch_grids, **extra},
        info=info,
    )


def trainer_of(name: str) -> str:
    """The loop that trains a translation model: a built-in's own adversarial loop, else imgx's supervised loop."""
    return (MODELS.meta(name).get("trainer") if name in MODELS else None) or "supervised"


def _model_info(spec, model, same_channels: bool, trainer: str) -> dict[str, Any]:
    if trainer == "supervised":
        return {"model": origin(spec.model.name), "parameters": sum(p.numel() for p in model.parameters()),
                "loss": "MSE (imgx's supervised loop, Adam)"}
    if trainer == "cyclegan":
        from imgx.models.cyclegan import POOL_SIZE

        return {"generators": "ResNet", "parameters_per_generator": sum(p.numel() for p in model.g_ab.parameters()),
                "discriminator_patch_layers": model.d_a.layers, "lambda_cycle": model.lambda_cycle,
                "lambda_identity": model.lambda_identity if same_channels else "0 (A and B differ in channels)",
                "pool": POOL_SIZE, "gan_loss": "least squares"}
    return {"generator": "U-Net", "parameters": sum(p.numel() for p in model.generator.parameters()),
            "discriminator_patch_layers": model.discriminator.layers, "loss": model.loss,
            "lambda_l1": model.lambda_l1, "gan_loss": "BCE (conditional)"}


def _distribution_rows(case, ctx, data, real: torch.Tensor, outputs: dict[str, torch.Tensor]) -> list[MetricRow]:
    """FID / KID of each output set against the real test B, one extractor embedding each set once."""
    spec = case.spec
    rows: list[MetricRow] = []
    features: dict[tuple[int, str], np.ndarray] = {}
    for m in (m for m in spec.metrics if m in ("fid", "kid")):
        options = dict(spec.metric_options.get(m, {}))
        name = options.get("features", DEFAULT_FEATURES)
        try:
            ex: FeatureExtractor = _extractor(name, options, data, case, ctx)
        except FeaturesUnavailable as exc:
            rows += [MetricRow(m, None, "", ref, status="unavailable", detail=str(exc)) for ref in REFERENCES]
            continue
        for key, images in (("real", real), *outputs.items()):
            if (id(ex), key) not in features:
                features[id(ex), key] = ex(images)
        for ref in REFERENCES:
            row, _ = _score(m, ex, features[id(ex), "real"], features[id(ex), ref], ref, options, case.seed)
            row.detail = f"A->B vs real test B; {row.detail}"
            rows.append(row)
    return rows
