"""Edit metrics against ground-truth target images (MagicBrush-style), with ``identity`` and ``oracle`` rows.

- ``target_mse``, ``target_psnr``, ``target_ssim``: output vs the true edited image (data range 1.0).
- ``input_ssim``: input vs output, how much of the input survives.
- ``instruction_accuracy``: the fraction of outputs closer (MSE) to the target of their own instruction than to
  the target of every other instruction given for the same input.

Every metric comes as the model's row, an ``identity`` row (the input returned unchanged: what an edit must
beat) and an ``oracle`` row (the true target returned: the ceiling), overall and per instruction
(``target_mse[grayscale]``); ``target_mse`` also gets a ``vae-floor`` row when the caller knows the VAE's
reconstruction error of the targets. Means carry seeded bootstrap 95% intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imgx.results import MetricRow

GROUND_TRUTH = ("target_mse", "target_psnr", "target_ssim", "input_ssim", "instruction_accuracy")
REFERENCES = ("identity", "oracle")
DETAIL = {
    "target_mse": "output vs true target, data_range=1.0 on [0,1] RGB",
    "target_psnr": "output vs true target, data_range=1.0",
    "target_ssim": "output vs true target, data_range=1.0",
    "input_ssim": "input vs output, data_range=1.0",
    "instruction_accuracy": "output nearer (MSE) its own instruction's target than every other instruction's "
                            "target for the same input",
}

# What the vae-floor row is, and what it is not: a pipeline's decoder can land nearer a target than the round
# trip of that target does (it decodes other latents), so the row is a scale for target_mse, never a bound.
VAE_FLOOR_DETAIL = ("the error of the VAE round trip of the target (encode to the latent mode, decode, uint8): "
                    "what this VAE loses on the targets themselves; a scale for the model's target_mse, not a "
                    "bound (a decoded output can lie nearer the target)")


@dataclass
class Scored:
    """One valid output with what it is judged against: ``(H, W, 3)`` uint8 arrays of one size."""

    output: np.ndarray
    input: np.ndarray
    target: np.ndarray | None
    instruction: str
    group: str  # the input's identity: outputs of one group share an input


def instruction_key(instruction: str) -> str:
    """The short name used in per-instruction metric names: photo-edits' key, else a slug of the text."""
    from imgx.data.photo_edits import edit_key
    from imgx.imageio import slug

    return edit_key(instruction) or slug(instruction, 40)


def instruction_names(instructions: list[str]) -> dict[str, str]:
    """A unique short name per instruction: :func:`instruction_key`, plus a short hash of the exact text where the
    slug was cut or two instructions share one (``make-it-red-3f2a9c``), so no two rows overwrite each other."""
    import hashlib

    from imgx.data.photo_edits import edit_key
    from imgx.imageio import slug

    keys = {ins: instruction_key(ins) for ins in instructions}
    counts: dict[str, int] = {}
    for key in keys.values():
        counts[key] = counts.get(key, 0) + 1
    out = {}
    for ins, key in keys.items():
        cut = not edit_key(ins) and slug(ins, 10**6) != key
        if cut or counts[key] > 1:
            key = f"{key}-{hashlib.sha256(ins.encode('utf-8', 'surrogatepass')).hexdigest()[:6]}"
        out[ins] = key
    return out


def _unit(arrays: list[np.ndarray]):
    from imgx.imageio import arrays_to_unit

    return arrays_to_unit(arrays)


def _per_image(metric: str, outs: list[np.ndarray], items: list[Scored],
               candidates: dict[str, dict[str, np.ndarray]]) -> np.ndarray:
    """Per-image values of ``metric`` for ``outs`` (the model's outputs, the inputs or the targets)."""
    from imgx.metrics.pixel import mse, psnr, ssim

    if metric == "input_ssim":
        return ssim(_unit([it.input for it in items]), _unit(outs)).numpy()
    if metric == "instruction_accuracy":
        return np.array([_correct(o, it, candidates[it.group]) for o, it in zip(outs, items, strict=True)], float)
    fn = {"target_mse": mse, "target_psnr": psnr, "target_ssim": ssim}[metric]
    return fn(_unit(outs), _unit([it.target for it in items])).numpy()


def _correct(out: np.ndarray, item: Scored, targets: dict[str, np.ndarray]) -> bool:
    o = out.astype(np.float64) / 255.0

    def dist(t: np.ndarray) -> float:
        return float(((o - t.astype(np.float64) / 255.0) ** 2).mean())

    own = dist(item.target)
    return all(own < dist(t) for ins, t in targets.items() if ins != item.instruction)


def candidate_targets(items: list[Scored]) -> dict[str, dict[str, np.ndarray]]:
    """Per input (group), the target of every instruction given for it."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for it in items:
        if it.target is not None:
            out.setdefault(it.group, {})[it.instruction] = it.target
    return out


def ground_truth_rows(metrics: list[str], items: list[Scored], seed: int, *,
                      candidates: dict[str, dict[str, np.ndarray]] | None = None,
                      floor_mse: list[float | None] | None = None) -> list[MetricRow]:
    """Rows for the requested ground-truth metrics over valid outputs.

    Args:
        metrics: the case's metrics (others are ignored).
        items: the valid outputs; those without a target are left out (a row says how many).
        seed: the bootstrap seed (the case seed).
        candidates: per group, every instruction's target (default: from ``items``; pass all rows, valid or
            not, so an invalid output does not remove a competitor).
        floor_mse: per item, the VAE's reconstruction MSE of its target (``vae-floor`` rows), or None.
    """
    from imgx.metrics import metric_info
    from imgx.metrics.stats import mean_with_ci

    wanted = [m for m in metrics if m in GROUND_TRUTH]
    if not wanted:
        return []
    keep = [i for i, it in enumerate(items) if it.target is not None]
    if not keep:
        reason = ("no valid output has a target image (targets come from data: photo-edits or an edit-csv target "
                  "column, for prompts equal to the row's instruction)" if items else "no valid outputs")
        return [MetricRow(m, None, metric_info(m).unit, status="unavailable" if items else "failed", detail=reason)
                for m in wanted]
    scored = [items[i] for i in keep]
    floors = [floor_mse[i] for i in keep] if floor_mse is not None else None
    candidates = candidates if candidates is not None else candidate_targets(scored)
    note = f"; {len(items) - len(keep)} outputs without a target left out" if len(keep) < len(items) else ""
    groups: list[tuple[str, list[int]]] = [("", list(range(len(scored))))]
    by_instruction: dict[str, list[int]] = {}
    for i, it in enumerate(scored):
        by_instruction.setdefault(it.instruction, []).append(i)
    groups += list(by_instruction.items())

    names = instruction_names(list(by_instruction))
    rows: list[MetricRow] = []
    for metric in wanted:
        unit = metric_info(metric).unit
        for instruction, idx in groups:
            name = f"{metric}[{names[instruction]}]" if instruction else metric
            where = f"; instruction {instruction!r}" if instruction else note
            sub = [scored[i] for i in idx]
            if metric == "instruction_accuracy":
                sub_idx = [i for i in idx if len(candidates.get(scored[i].group, {})) > 1]
                if not sub_idx:
                    rows.append(MetricRow(name, None, unit, status="unavailable", detail=(
                        "needs targets of at least two instructions for the same input" + where)))
                    continue
                sub = [scored[i] for i in sub_idx]
            sources = {"": [it.output for it in sub], "identity": [it.input for it in sub],
                       "oracle": [it.target for it in sub]}
            for reference, outs in sources.items():
                if metric == "target_psnr" and reference == "oracle":
                    rows.append(MetricRow(name, None, unit, reference, status="unavailable",
                                          detail="the oracle output is the target: PSNR is infinite"))
                    continue
                try:
                    values = _per_image(metric, outs, sub, candidates)
                except ValueError as exc:  # e.g. SSIM on images smaller than its window
                    rows.append(MetricRow(name, None, unit, reference, status="unavailable", detail=str(exc)))
                    continue
                if not np.isfinite(values).all():  # PSNR of an output identical to its target
                    rows.append(MetricRow(name, None, unit, reference, status="unavailable", detail=(
                        f"{int((~np.isfinite(values)).sum())} of {len(values)} outputs equal their target "
                        "exactly: PSNR is infinite" + where)))
                    continue
                mean, low, high, n = mean_with_ci(values, seed=seed)
                detail = DETAIL[metric] + {"": "", "identity": "; identity: the input unchanged",
                                           "oracle": "; oracle: the true target"}[reference] + where
                rows.append(MetricRow(name, mean, unit, reference, n, low, high, detail=detail))
            if metric == "target_mse" and floors is not None:
                values = [floors[i] for i in idx if floors[i] is not None]
                if values:
                    mean, low, high, n = mean_with_ci(values, seed=seed)
                    rows.append(MetricRow(name, mean, unit, "vae-floor", n, low, high, detail=(
                        VAE_FLOOR_DETAIL + where)))
    return rows
