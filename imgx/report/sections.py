"""Task sections: per task, the blocks above the case panels (grids, trade-off plots, device and stage tables)."""

from __future__ import annotations

import logging
import statistics
from typing import Any

from markupsafe import Markup

from imgx.report import plots
from imgx.report.grids import ImageEmbedder, edit_grids, guidance_grids
from imgx.report.model import (
    Block,
    metric_better,
    short_labels,
    text,
    value_of,
)
from imgx.report.tables import STATUS_CSS, Table

log = logging.getLogger("imgx")

# The y axis of the edit Pareto plot: a metric where higher (or lower) means a better edit, against the truth when
# the data has targets. Never input-vs-output similarity (ssim, psnr, input_ssim, clip_image_similarity), which
# rewards editing less.
QUALITY_PREFERENCE = ("target_ssim", "target_psnr", "target_mse", "instruction_accuracy",
                      "clip_directional_similarity", "clip_score")
MIN_POINTS = 2  # a scatter of one point says nothing: its value is in the case's panel
STAGE_ORDER = ("text_encode", "image_encode", "denoise", "vae_decode")
NOT_STAGES = {"latency_ms_p50", "latency_ms_p90"}


# ------------------------------------------------------------------------------------------ edit blocks
def _guidance_label(params: dict[str, Any]) -> str:
    parts = []
    if "image_guidance_scale" in params:
        parts.append(f"ig={text(params['image_guidance_scale'])}")
    if "guidance_scale" in params:
        parts.append(f"g={text(params['guidance_scale'])}")
    return " ".join(parts)


def _group_label(rec: dict[str, Any]) -> str:
    p = rec.get("params") or {}
    parts = [str(p[k]) for k in ("scheduler",) if k in p]
    if "num_inference_steps" in p:
        parts.append(f"{p['num_inference_steps']} steps")
    return ", ".join(parts) or rec.get("base_id", "")


def tradeoff_block(recs: list[dict[str, Any]]) -> Block | None:
    """CLIP image similarity against CLIP directional similarity, one point per case, labelled by guidance."""
    pts, table = [], Table("points", ["case_id", "image similarity", "directional similarity", "guidance"],
                           filename="edit-tradeoff.csv")
    for rec in recs:
        x, y = value_of(rec, "clip_directional_similarity"), value_of(rec, "clip_image_similarity")
        if x is None or y is None:
            continue
        label = _guidance_label(rec.get("params") or {})
        pts.append(plots.Point(x, y, label, _group_label(rec)))
        table.add([rec["case_id"], y, x, label])
    if len(pts) < MIN_POINTS:
        return None
    svg = plots.scatter_plot(pts, "CLIP directional similarity (follows the edit)",
                             "CLIP image similarity (keeps the input)")
    return Block("Image similarity vs directional similarity", svg=Markup(svg), table=table,
                 note="Each point is one case; labels are image guidance (ig) and text guidance (g). Up and right "
                      "is better: more of the input kept and more of the edit done.")


def pareto_blocks(recs: list[dict[str, Any]]) -> list[Block]:
    """Latency against quality across schedulers and step counts, per device, with the Pareto front marked."""
    timed = [r for r in recs if value_of(r, "latency_ms_p50") is not None]
    quality = next((m for m in QUALITY_PREFERENCE if metric_better(m) in ("higher", "lower")
                    and sum(value_of(r, m) is not None for r in timed) >= MIN_POINTS), None)
    if quality is None:
        return []
    blocks = []
    devices = list(dict.fromkeys(f"{r.get('device')} {r.get('dtype')}" for r in recs))
    for dev in devices:
        pts, owners = [], []
        for r in recs:
            lat, q = value_of(r, "latency_ms_p50"), value_of(r, quality)
            if f"{r.get('device')} {r.get('dtype')}" != dev or lat is None or q is None:
                continue
            p = r.get("params") or {}
            steps = p.get("num_inference_steps")
            label = f"{steps} st" if steps is not None else ""
            pts.append(plots.Point(lat, q, label, str(p.get("scheduler", r.get("base_id", "")))))
            owners.append(r)
        if len(pts) < MIN_POINTS:
            continue
        front = plots.pareto_front(pts, minimize_x=True, maximize_y=metric_better(quality) != "lower")
        on_front = {id(p) for p in front}
        table = Table("points", ["case_id", "device", "dtype", "scheduler", "steps", "latency_ms_p50", quality,
                                 "on Pareto front"], filename=f"edit-pareto-{dev.replace(' ', '-')}.csv")
        for p, r in zip(pts, owners, strict=False):
            params = r.get("params") or {}
            table.add([r["case_id"], r.get("device"), r.get("dtype"), params.get("scheduler"),
                       params.get("num_inference_steps"), p.x, p.y, id(p) in on_front],
                      css={7: "ok" if id(p) in on_front else ""})
        svg = plots.scatter_plot(pts, "latency p50 (ms, log scale)", quality, front=front, logx=True,
                                 title=f"latency vs {quality} on {dev}")
        blocks.append(Block(f"Latency vs quality ({dev})", svg=Markup(svg), table=table,
                            note="Colour and shape: scheduler; label: denoising steps. Circled points are on the "
                                 "Pareto front: no other setting is both faster and better."))
    return blocks


def device_block(recs: list[dict[str, Any]]) -> Block | None:
    """CPU against CUDA latency per dtype, with the speed-up over the CPU case of the same sweep point."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in recs:
        p = {k: v for k, v in (r.get("params") or {}).items() if k not in ("device", "dtype")}
        groups.setdefault((r.get("base_id"), tuple(sorted((k, str(v)) for k, v in p.items()))), []).append(r)
    devices = {str(r.get("device", "")).split(":")[0] for r in recs}
    if not ({"cpu", "cuda"} <= devices):
        return None
    table = Table("latency by device and dtype", ["point", "device", "dtype", "status", "latency_ms_p50",
                                                  "latency_ms_p90", "speed-up vs CPU"], filename="edit-devices.csv")
    speedups: dict[str, list[float]] = {}
    by_kind: dict[str, list[float]] = {}
    for (base, pkey), members in groups.items():
        cpu = [m for m in members if str(m.get("device")).startswith("cpu") and value_of(m, "latency_ms_p50")]
        cpu_ms = min((value_of(m, "latency_ms_p50") for m in cpu), default=None)
        point = base + (f"[{', '.join(f'{k}={v}' for k, v in pkey)}]" if pkey else "")
        for m in members:
            p50 = value_of(m, "latency_ms_p50")
            kind = f"{str(m.get('device')).split(':')[0]} {m.get('dtype')}"
            on_cpu = str(m.get("device")).startswith("cpu")
            speed = cpu_ms / p50 if cpu_ms and p50 and not on_cpu else None
            if p50 is not None:
                by_kind.setdefault(kind, []).append(p50)
            if speed is not None:
                speedups.setdefault(kind, []).append(speed)
            table.add([point, m.get("device"), m.get("dtype"), m.get("status"), p50,
                       value_of(m, "latency_ms_p90"), speed],
                      css={3: STATUS_CSS.get(str(m.get("status")), "")},
                      display={6: f"{speed:.1f}x" if speed else ""},
                      titles={3: m.get("detail") or ""})
    svg = None
    if by_kind:
        labels = list(by_kind)
        medians = [statistics.median(by_kind[k]) for k in labels]
        notes = [f"{statistics.median(speedups[k]):.1f}x" if k in speedups else "" for k in labels]
        svg = Markup(plots.bar_plot(labels, medians, "median latency p50 (ms, log scale)", logx=True,
                                    annotations=notes, title="CPU vs CUDA, by dtype (label: median speed-up)"))
    skipped = [r for r in recs if r.get("status") == "skipped"]
    warn = f"{len(skipped)} case(s) skipped: {skipped[0].get('detail')}" if skipped else ""
    return Block("CPU vs CUDA latency", svg=svg, table=table, warn=warn,
                 note="Speed-up is the CPU p50 of the same sweep point divided by this case's p50.")


def stage_block(recs: list[dict[str, Any]], limit: int = 40) -> Block | None:
    """Per-stage latency split (text encode, image encode, denoise, VAE decode) per case."""
    names: list[str] = []
    for r in recs:
        for row in r.get("rows", []):
            m = str(row.get("metric", ""))
            if m.startswith("latency_ms_") and m not in NOT_STAGES and not row.get("reference") and m not in names:
                names.append(m)
    if not names:
        return None
    order = {f"latency_ms_{s}": i for i, s in enumerate(STAGE_ORDER)}
    names.sort(key=lambda m: order.get(m, len(order)))
    with_stages = [r for r in recs if any(value_of(r, m) is not None for m in names)]
    if not with_stages:
        return None
    table = Table("per-stage latency (ms)", ["case_id", *[m.removeprefix("latency_ms_") for m in names], "total"],
                  filename="edit-stages.csv")
    for r in with_stages:
        vals = [value_of(r, m) for m in names]
        table.add([r["case_id"], *vals, sum(v for v in vals if v is not None)])
    shown = with_stages[:limit]
    svg = plots.stacked_bar_plot(short_labels(shown),
                                 {m.removeprefix("latency_ms_"): [value_of(r, m) for r in shown] for m in names},
                                 "milliseconds per call (p50 per stage)")
    note = "Time per pipeline call spent in each stage."
    if len(with_stages) > limit:
        note += f" The plot shows the first {limit} of {len(with_stages)} cases; the table has all."
    return Block("Per-stage latency", svg=Markup(svg), table=table, note=note)


def cost_block(recs: list[dict[str, Any]]) -> Block | None:
    """Latency beside the deterministic cost rows (FLOPs, parameters, UNet evaluations), one line per case."""
    names = list(dict.fromkeys(str(row.get("metric")) for r in recs for row in r.get("rows", [])
                               if not row.get("reference") and metric_kind(str(row.get("metric"))) == "cost"))
    if not names:
        return None
    table = Table("latency and cost per case", ["case_id", "latency_ms_p50", *names], filename="cost.csv")
    for r in recs:
        table.add([r["case_id"], value_of(r, "latency_ms_p50"), *[value_of(r, m) for m in names]])
    return Block("Latency and cost", table=table,
                 note="Cost rows are counts of one real call (FLOPs by torch's FlopCounterMode, parameters, UNet rows "
                      "per image): the same on any machine, so comparisons judge them exactly.")


def metric_kind(name: str) -> str:
    """The metric's kind (``cost``, ``timing``...), ``""`` for a name imgx does not know."""
    from imgx.metrics import metric_info

    try:
        return metric_info(name).kind
    except Exception:  # noqa: BLE001 - an old run's unknown metric has no kind
        return ""


def edit_metrics_table(recs: list[dict[str, Any]]) -> Table:
    """One row per edit case: sweep parameters, then each metric's value (model rows only)."""
    params = list(dict.fromkeys(k for r in recs for k in (r.get("params") or {})))
    metrics = list(dict.fromkeys(row["metric"] for r in recs for row in r.get("rows", []) if not row.get("reference")))
    table = Table("all edit cases", ["case_id", "status", *params, *metrics], filename="edit-cases.csv")
    for r in recs:
        p = r.get("params") or {}
        table.add([r["case_id"], r.get("status"), *[p.get(k) for k in params], *[value_of(r, m) for m in metrics]],
                  css={1: STATUS_CSS.get(str(r.get("status")), "")}, titles={1: r.get("detail") or ""})
    return table


def edit_blocks(recs: list[dict[str, Any]], outputs: list[dict[str, Any]], embedder: ImageEmbedder) -> list[Block]:
    """The InstructPix2Pix section: guidance grids, trade-off, Pareto, CPU vs CUDA, per-stage split, all cases."""
    blocks: list[Block] = []
    ids = {r["case_id"] for r in recs}
    random_cases = {r["case_id"] for r in recs if (r.get("info") or {}).get("random_weights")}
    mine = [o for o in outputs if str(o.get("case_id")) in ids]
    params = {r["case_id"]: r.get("params") or {} for r in recs}
    grids, left_out = edit_grids(mine, embedder, random_cases, params)
    note = ("One grid per input: instructions down the rows; the input, then each sweep setting side by side "
            "(what every output shares is listed above the grid).")
    if left_out:
        note += f" {left_out} more outputs are not embedded (image budget); they are in images/ and outputs.csv."
    if not mine:
        note = "No edit outputs were saved in this run."
    blocks.append(Block("Outputs by input and instruction", note=note, edit_grids=grids))
    for block in (tradeoff_block(recs), *pareto_blocks(recs), device_block(recs), stage_block(recs)):
        if block is not None:
            blocks.append(block)
    if len({r.get("base_id") for r in recs}) > 1:  # one base case: its sweep table has every value
        blocks.append(Block("All edit cases", table=edit_metrics_table(recs)))
    return blocks


# ------------------------------------------------------------------------------------- translate blocks
TRANSLATE_METRICS = ("mse", "psnr", "ssim", "target_mse", "target_ssim", "fid", "kid", "cycle_mse_aba",
                     "cycle_mse_bab")
TRANSLATE_REFERENCES = ("", "identity", "untrained")


def _translate_table(title: str, recs: list[dict[str, Any]], metrics: list[str], first: list[tuple[str, Any]],
                     filename: str) -> Table:
    cols = [c for c, _ in first] + [f"{m} ({ref})" if ref else m for m in metrics for ref in TRANSLATE_REFERENCES]
    table = Table(title, cols, filename=filename)
    for r in recs:
        values = [get(r) for _, get in first]
        values += [value_of(r, m, ref) for m in metrics for ref in TRANSLATE_REFERENCES]
        table.add(values, titles={0: r.get("detail") or ""})
    return table


def translate_blocks(recs: list[dict[str, Any]]) -> list[Block]:
    """pix2pix's loss ablation (per loss: MSE, SSIM, FID, side by side) and every translate case vs references."""
    blocks: list[Block] = []
    present = [m for m in TRANSLATE_METRICS if any(value_of(r, m, ref) is not None for r in recs
                                                   for ref in TRANSLATE_REFERENCES)]
    for base in dict.fromkeys(r.get("base_id") for r in recs if "loss" in (r.get("params") or {})):
        group = [r for r in recs if r.get("base_id") == base]
        metrics = [m for m in ("mse", "ssim", "fid", "target_mse", "target_ssim") if m in present]
        table = _translate_table("loss ablation", group, metrics,
                                 [("loss", lambda r: (r.get("params") or {}).get("loss")),
                                  ("status", lambda r: r.get("status"))], f"translate-ablation-{base}.csv")
        blocks.append(Block(f"Loss ablation: {base}", table=table,
                            note="The shape of the pix2pix paper's loss ablation: one row per loss, trained here "
                                 "from scratch with everything else equal. Lower MSE and FID, higher SSIM are "
                                 "better; FID in efficientnet-lite0 features is not comparable to Inception FID."))
    table = _translate_table("all translate cases", recs, present,
                             [("case_id", lambda r: r["case_id"]), ("model", lambda r: r.get("model")),
                              ("status", lambda r: r.get("status")),
                              ("train img/s", lambda r: value_of(r, "train_images_per_second"))],
                             "translate-cases.csv")
    blocks.append(Block("All translate cases against identity and untrained", table=table,
                        note="Each metric beside its two references: identity (the input copied through) and "
                             "untrained (the generator before training). All models trained here."))
    return blocks


# ------------------------------------------------------------------------------------ text-to-image blocks
T2I_ALIGNMENT = ("clip_score", "prompt_accuracy")  # x axes of the trade-off plots (higher is better)


def t2i_tradeoff_blocks(recs: list[dict[str, Any]]) -> list[Block]:
    """FID against CLIP score / prompt accuracy, one point per case, coloured by step count, Pareto front marked.

    The trade-off of the Stable Diffusion papers: more guidance follows the prompt better and, past a point,
    costs fidelity (FID rises). One plot per alignment metric that has ok values next to an ok FID.
    """
    blocks = []
    for metric in T2I_ALIGNMENT:
        pts, owners = [], []
        for r in recs:
            x, y = value_of(r, metric), value_of(r, "fid")
            if x is None or y is None:
                continue
            p = r.get("params") or {}
            steps = p.get("num_inference_steps", (r.get("info") or {}).get("num_inference_steps", ""))
            group = ", ".join(x for x in (f"{steps} steps" if steps != "" else "", str(p.get("scheduler", "")))
                              if x) or r.get("base_id", "")
            g = p.get("guidance_scale")
            pts.append(plots.Point(x, y, f"g={text(g)}" if g is not None else "", group))
            owners.append(r)
        if len(pts) < MIN_POINTS:
            continue
        front = plots.pareto_front(pts, minimize_x=False, maximize_y=False)
        on_front = {id(p) for p in front}
        table = Table("points", ["case_id", "guidance", "steps", "scheduler", metric, "fid", "on Pareto front"],
                      filename=f"t2i-fid-vs-{metric}.csv")
        for p, r in zip(pts, owners, strict=True):
            params = r.get("params") or {}
            table.add([r["case_id"], params.get("guidance_scale"), params.get("num_inference_steps"),
                       params.get("scheduler"), p.x, p.y, id(p) in on_front],
                      css={6: "ok" if id(p) in on_front else ""})
        svg = plots.scatter_plot(pts, metric.replace("_", " ") + " (prompt alignment, higher is better)",
                                 "FID (fidelity, lower is better)", front=front,
                                 title=f"FID vs {metric.replace('_', ' ')}, by step count")
        blocks.append(Block(f"FID vs {metric.replace('_', ' ')}", svg=Markup(svg), table=table,
                            note="Each point is one case; label: guidance scale; colour and shape: step count and "
                                 "scheduler. Circled points are on the Pareto front: no other setting has both "
                                 "better prompt alignment and lower FID."))
    return blocks


def t2i_blocks(recs: list[dict[str, Any]], outputs: list[dict[str, Any]], embedder: ImageEmbedder) -> list[Block]:
    """The text-to-image section: samples by prompt over guidance and steps, trade-offs, per-stage split, cases."""
    ids = {r["case_id"] for r in recs}
    random_cases = {r["case_id"] for r in recs if (r.get("info") or {}).get("random_weights")}
    # the first sample of each prompt across the sweep: steps down the rows, guidance across the columns
    mine = [o for o in outputs if str(o.get("case_id")) in ids and str(o.get("sample", "0")) == "0"]
    params = {r["case_id"]: r.get("params") or {} for r in recs}
    grids, left_out = guidance_grids(mine, embedder, random_cases, params, row_axis="num_inference_steps",
                                     col_axis="guidance_scale")
    note = ("The first sample of each prompt (same seed in every case): denoising steps down the rows, guidance "
            "across the columns. Each case's panel below has its full sample grid.")
    if left_out:
        note += f" {left_out} more outputs are not embedded (image budget); they are in images/ and outputs.csv."
    trained = [r for r in recs if (r.get("info") or {}).get("trained")]
    if trained:
        folders = sorted({str(r["info"]["trained"].get("copy") or r["info"]["trained"].get("folder")) for r in trained})
        note += (" Models trained here (micro Stable Diffusion on the case's data; not a published model), saved "
                 f"with save_pretrained in: {', '.join(folders)} (loads with a bare "
                 "StableDiffusionPipeline.from_pretrained).")
    clip_trained = {str(r["info"]["clip_trained"]["provenance"]) for r in recs
                    if (r.get("info") or {}).get("clip_trained")}
    if len(recs) <= 1:  # no sweep to compare across: the case panel's grid has every sample
        grids, note = [], note[note.index("Models trained here"):] if "Models trained here" in note else ""
    blocks = [Block("Samples by prompt", note=note, grids=grids)] if grids or note else []
    if clip_trained:
        blocks.append(Block("CLIP used for clip_score", warn=" | ".join(sorted(clip_trained))))
    blocks += t2i_tradeoff_blocks(recs)
    for block in (*pareto_blocks(recs), stage_block(recs)):
        if block is not None:
            blocks.append(block)
    table = edit_metrics_table(recs)
    table.title, table.filename = "all text-to-image cases", "t2i-cases.csv"
    if len(recs) > 1:  # one case: its panel has every value
        blocks.append(Block("All text-to-image cases", table=table))
    return blocks
