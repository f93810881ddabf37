"""The ``colorize`` task: train a colorizer to fixed epochs, score it on held-out crops against gray-copy.

The model is whatever :mod:`imgx.models.protocol` builds for the suite's name (built-in, entry point, import
path): a module from gray ``(N, 1, H, W)`` to colour ``(N, 3, H, W)`` in ``[-1, 1]``. With ``model.checkpoint`` it
is loaded and evaluated without training; otherwise its trained weights are saved in the run directory
(``models/*.safetensors``, the ``checkpoint`` artifact) so that a later case can evaluate them again.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from imgx.data import DATASETS
from imgx.imageio import grid, rgb_to_gray, tensor_to_array, to_unit
from imgx.metrics import metric_info
from imgx.metrics.cost import case_cost_rows
from imgx.metrics.pixel import PIXEL_METRICS
from imgx.metrics.stats import mean_with_ci
from imgx.models.protocol import ModelError, build, check_images, load_checkpoint, origin, save_checkpoint
from imgx.results import CaseResult, MetricRow
from imgx.train.supervised import fit, predict

GRID_IMAGES = 8


def error_heatmap(pred01: torch.Tensor, target01: torch.Tensor) -> np.ndarray:
    """Per-pixel absolute error (mean over channels) as an ``(N, H, W, 3)`` uint8 'inferno' heat map, 0..0.5."""
    from matplotlib import colormaps

    err = (pred01 - target01).abs().mean(dim=1).clamp(0, 0.5).div(0.5).numpy()
    return (colormaps["inferno"](err)[..., :3] * 255).round().astype(np.uint8)


def score_rows(pred01: torch.Tensor, target01: torch.Tensor, metrics: list[str], reference: str,
               seed: int) -> list[MetricRow]:
    """Rows for the requested pixel metrics: mean over images with a bootstrap CI, in ``[0, 1]`` data range."""
    rows = []
    for name in metrics:
        if name not in PIXEL_METRICS:
            continue
        values = PIXEL_METRICS[name](pred01, target01).numpy()
        mean, low, high, n = mean_with_ci(values, seed=seed)
        rows.append(MetricRow(name, mean, metric_info(name).unit, reference, n, low, high,
                              detail="data_range=1.0 on [0,1] RGB"))
    return rows


def run(case, ctx) -> CaseResult:
    """Train the case's colorizer (or load its ``checkpoint``) and score it; see the module docstring."""
    spec = case.spec
    data = DATASETS.get(spec.data.name)(spec.data, case.seed, "colorize")
    train_rgb, test_rgb = data["train"], data["test"]
    train_gray, test_gray = rgb_to_gray(train_rgb), rgb_to_gray(test_rgb)
    name = spec.model.name
    model = build(case, "colorize", in_channels=1, out_channels=3, image_size=test_rgb.shape[-1])
    probe(model, test_gray[:2], (3, *test_rgb.shape[-2:]), name)
    history: list[dict] = []
    train_seconds = None
    if spec.model.checkpoint:
        model.to(device=case.device, memory_format=torch.channels_last)  # as training leaves it: the same numbers
        load_checkpoint(model, spec.model.checkpoint, name)
    else:
        t0 = time.perf_counter()
        history = fit(model, train_gray, train_rgb, epochs=spec.train.epochs, batch_size=spec.train.batch_size,
                      lr=spec.train.lr, seed=case.seed, device=case.device, test=(test_gray, test_rgb),
                      progress=ctx.progress)
        train_seconds = time.perf_counter() - t0
    pred = predict(model, test_gray, device=case.device)
    check_images(pred, tuple(test_rgb.shape), name)

    pred01, target01 = to_unit(pred), to_unit(test_rgb)
    gray01 = to_unit(test_gray).expand(-1, 3, -1, -1)
    rows = score_rows(pred01, target01, spec.metrics, "", case.seed)
    rows += score_rows(gray01, target01, spec.metrics, "gray-copy", case.seed)
    if train_seconds is not None:
        images = len(train_rgb) * spec.train.epochs
        rows.append(MetricRow("train_seconds", train_seconds, "s", n=spec.train.epochs))
        rows.append(MetricRow("train_images_per_second", images / train_seconds, "img/s", n=images))
    batch = test_gray[:64].to(case.device)
    rows += case_cost_rows(case, lambda: model(batch), {"model": [model]}, images=len(batch))
    if "latency" in spec.metrics:
        from imgx.metrics.timing import latency_rows

        rows += latency_rows(lambda: model(batch), device=case.device, warmup=2, repeats=20, items=len(batch))

    k = min(GRID_IMAGES, len(test_rgb))
    sample = grid([tensor_to_array(test_gray[:k]), tensor_to_array(pred[:k]), tensor_to_array(test_rgb[:k]),
                   error_heatmap(pred01[:k], target01[:k])], scale=max(1, 96 // test_rgb.shape[-1]))
    grid_path = ctx.save_image(sample, case.id, "grid")
    artifacts = {"grid": grid_path, "grid_rows": ["gray input", "output", "target", "error |output - target|"]}
    info = {"data": data["info"], "parameters": sum(p.numel() for p in model.parameters()),
            "torch_threads": torch.get_num_threads(), "train_images": len(train_rgb), "model": origin(name)}
    if spec.model.checkpoint:
        info["checkpoint"] = spec.model.checkpoint
        info["trained"] = "loaded from model.checkpoint and evaluated as is (not trained here)"
    else:
        artifacts["checkpoint"] = save_checkpoint(ctx, case, model)
    return CaseResult(rows=rows, history=history, artifacts=artifacts, info=info)


def probe(model, inputs: torch.Tensor, out_shape: tuple[int, ...], name: str) -> None:
    """One untimed forward pass on a couple of inputs before training: a wrong output fails the case at once."""
    with torch.no_grad():
        was = model.training
        model.eval()
        try:
            out = model(inputs)
        except Exception as exc:  # noqa: BLE001 - user code: the case fails with the reason
            raise ModelError(f"model {origin(name)} raised on a {tuple(inputs.shape)} input: "
                             f"{type(exc).__name__}: {exc}") from exc
        model.train(was)
    check_images(out, (len(inputs), *out_shape), name)
