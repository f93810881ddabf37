"""Ground-truth rows of an edit case: each valid output against its data row's target image.

An output has a target when its prompt is its data row's own instruction and the row has a target
(``photo-edits``, or an ``edit-csv`` with a ``target`` column). Targets are resized like inputs to the output's
size. For a pipeline trained here, the VAE's reconstruction error of the targets is the ``vae-floor`` row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imgx.metrics.ground_truth import GROUND_TRUTH, Scored, candidate_targets, ground_truth_rows
from imgx.results import MetricRow


def pair_target(data: dict[str, Any], pair) -> Any:
    """The target PIL image of a pair, or None (no target, or a prompt other than the row's instruction)."""
    targets = data.get("targets") or [None] * len(data["images"])
    if targets[pair.index] is None or pair.prompt != data["instructions"][pair.index]:
        return None
    return targets[pair.index]


def truth_rows(metrics: list[str], data: dict[str, Any], results: list, out_arrays: list[np.ndarray],
               valid: list[int], seed: int, vae=None) -> list[MetricRow]:
    """Ground-truth rows (see :mod:`imgx.metrics.ground_truth`) for the valid outputs of an edit case.

    Args:
        results: the edit task's ``(pair, image, nsfw)`` per output; ``out_arrays`` their uint8 images.
        vae: the pipeline's ``AutoencoderKL`` when the model was trained here (``vae-floor`` rows), else None.
    """
    from imgx.tasks.edit import input_like

    if not any(m in GROUND_TRUTH for m in metrics):
        return []
    images = data["images"]

    def scored(k: int) -> Scored:
        pair, out = results[k][0], out_arrays[k]
        target = pair_target(data, pair)
        return Scored(out, input_like(images[pair.index], out),
                      None if target is None else input_like(target, out), pair.prompt, pair.input_path)

    items = [scored(k) for k in valid]
    everything = candidate_targets([scored(k) for k in range(len(results))])  # invalid outputs keep competitors
    floor = vae_floor(vae, [it.target for it in items]) if vae is not None else None
    return ground_truth_rows(metrics, items, seed, candidates=everything, floor_mse=floor)


def vae_floor(vae, targets: list[np.ndarray | None]) -> list[float | None]:
    """Per target, the MSE (on ``[0, 1]``, uint8-rounded like pipeline outputs) of the VAE's reconstruction."""
    import torch

    idx = [i for i, t in enumerate(targets) if t is not None]
    out: list[float | None] = [None] * len(targets)
    if not idx:
        return out
    param = next(vae.parameters())
    x = torch.from_numpy(np.stack([targets[i] for i in idx])).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    with torch.no_grad():
        z = vae.encode(x.to(param.device, param.dtype)).latent_dist.mode()
        rec = vae.decode(z).sample.float().cpu()
    rec01 = ((rec.clamp(-1, 1) + 1) / 2 * 255).round() / 255
    err = (rec01 - (x + 1) / 2).pow(2).flatten(1).mean(1).double().numpy()
    for i, e in zip(idx, err, strict=True):
        out[i] = float(e)
    return out
