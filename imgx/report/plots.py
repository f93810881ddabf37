"""Plots as inline SVG strings (matplotlib, Agg): training curves, trade-offs, Pareto fronts, latency bars.

Each figure gets its own ``svg.hashsalt`` so the ids inside (clip paths) are unique within one HTML page, and
text stays text (``svg.fonttype: none``): smaller, selectable, escaped by matplotlib's SVG writer. Labels from
run data pass through :func:`plain` so a ``$`` never switches on mathtext.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

_COUNTER = itertools.count()
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plain(text: object, limit: int = 60) -> str:
    """Text safe for a matplotlib label: no mathtext, one line, at most ``limit`` characters."""
    s = " ".join(str(text).split())
    if len(s) > limit:
        s = s[:limit - 1] + "…"
    return s.replace("$", r"\$")


def _svg(fig) -> str:
    import matplotlib

    plt = _plt()
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"imgx{next(_COUNTER)}"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    start = text.find("<svg")
    svg = text[start:] if start >= 0 else text
    # Scale with the page: keep the viewBox, let CSS choose the width.
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="plot"', svg, count=1)
    # Ids must be unique in the page that holds many plots: prefix them and every reference to them.
    prefix = f"f{next(_COUNTER)}-"
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}\1"', svg)
    svg = re.sub(r'url\(#([^)]+)\)', rf'url(#{prefix}\1)', svg)
    return re.sub(r'href="#([^"]+)"', rf'href="#{prefix}\1"', svg)


def _finite(values: Sequence[object]) -> list[float | None]:
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            out.append(None)
            continue
        out.append(f if math.isfinite(f) else None)
    return out


def history_plot(epochs: Sequence[float], series: dict[str, Sequence[object]], title: str = "",
                 right: dict[str, Sequence[object]] | None = None, left_label: str = "loss",
                 right_label: str = "accuracy") -> str:
    """Lines per epoch: ``series`` on the left panel, ``right`` (accuracies) on a second panel when given."""
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    panels = 2 if right else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 if panels == 1 else 4.0 * panels, 3.0), squeeze=False)
    for ax, data, label in zip(axes[0], (series, right or {}), (left_label, right_label), strict=False):
        for i, (name, values) in enumerate(data.items()):
            ys = _finite(values)
            pts = [(x, y) for x, y in zip(epochs, ys, strict=False) if y is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, lw=1.5,
                        color=PALETTE[i % len(PALETTE)], label=plain(name))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if data:
            ax.legend(fontsize=8, frameon=False)
    if title:
        fig.suptitle(plain(title, 90), fontsize=10)
    return _svg(fig)


@dataclass
class Point:
    """One point of a scatter: coordinates, its label, and the group it is coloured by."""

    x: float
    y: float
    label: str = ""
    group: str = ""


def pareto_front(points: Sequence[Point], minimize_x: bool = True, maximize_y: bool = True) -> list[Point]:
    """The points no other point beats on both axes (lower x and higher y by default), sorted by x."""
    sx = 1 if minimize_x else -1
    sy = 1 if maximize_y else -1
    ordered = sorted(points, key=lambda p: (sx * p.x, -sy * p.y))
    front, best = [], -math.inf
    for p in ordered:
        if sy * p.y > best:
            front.append(p)
            best = sy * p.y
    return sorted(front, key=lambda p: p.x)


def scatter_plot(points: Sequence[Point], xlabel: str, ylabel: str, title: str = "", front: Sequence[Point] = (),
                 logx: bool = False, annotate: bool = True) -> str:
    """A labelled scatter, coloured and shaped by group, with an optional Pareto front drawn as a step line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    groups = list(dict.fromkeys(p.group for p in points))
    for i, g in enumerate(groups):
        pts = [p for p in points if p.group == g]
        ax.scatter([p.x for p in pts], [p.y for p in pts], s=28, color=PALETTE[i % len(PALETTE)],
                   marker=MARKERS[i % len(MARKERS)], label=plain(g) if g else None, zorder=3)
        if annotate and len(points) <= 40:
            for p in pts:
                if p.label:
                    ax.annotate(plain(p.label, 30), (p.x, p.y), textcoords="offset points", xytext=(4, 3),
                                fontsize=7, color="#333")
    if front:
        ax.plot([p.x for p in front], [p.y for p in front], color="#444", lw=1.2, ls="--", drawstyle="steps-post",
                label="Pareto front", zorder=2)
        ax.scatter([p.x for p in front], [p.y for p in front], s=90, facecolors="none", edgecolors="#222",
                   lw=1.2, zorder=4)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(plain(xlabel))
    ax.set_ylabel(plain(ylabel))
    ax.grid(alpha=0.3)
    if any(g for g in groups) or front:
        ax.legend(fontsize=8, frameon=False)
    if title:
        ax.set_title(plain(title, 90), fontsize=10)
    return _svg(fig)


def bar_plot(labels: Sequence[str], values: Sequence[float], xlabel: str, title: str = "", logx: bool = False,
             annotations: Sequence[str] | None = None) -> str:
    """Horizontal bars, one per label, with an optional text at the end of each bar."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.32 * max(1, len(labels))))
    ys = list(range(len(labels)))
    ax.barh(ys, values, color=[PALETTE[i % len(PALETTE)] for i in ys])
    ax.set_yticks(ys, [plain(s, 50) for s in labels], fontsize=8)
    ax.invert_yaxis()
    if logx:
        ax.set_xscale("log")
    for y, v, note in zip(ys, values, annotations or [""] * len(ys), strict=False):
        if note:
            ax.annotate(plain(note, 30), (v, y), textcoords="offset points", xytext=(4, -3), fontsize=8)
    ax.set_xlabel(plain(xlabel))
    ax.grid(alpha=0.3, axis="x")
    if title:
        ax.set_title(plain(title, 90), fontsize=10)
    return _svg(fig)


def stacked_bar_plot(labels: Sequence[str], stages: dict[str, Sequence[float]], xlabel: str, title: str = "") -> str:
    """Horizontal stacked bars: per label, one segment per stage (e.g. per-stage latency)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.8, 0.8 + 0.32 * max(1, len(labels))))
    ys = list(range(len(labels)))
    left = [0.0] * len(labels)
    for i, (stage, values) in enumerate(stages.items()):
        vals = [v if v is not None and math.isfinite(v) else 0.0 for v in _finite(values)]
        ax.barh(ys, vals, left=left, color=PALETTE[i % len(PALETTE)], label=plain(stage))
        left = [a + b for a, b in zip(left, vals, strict=False)]
    ax.set_yticks(ys, [plain(s, 50) for s in labels], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(plain(xlabel))
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, frameon=False, ncol=min(4, max(1, len(stages))), loc="lower center",
              bbox_to_anchor=(0.5, 1.0))
    if title:
        ax.set_title(plain(title, 90), fontsize=10)
    return _svg(fig)


def trend_plot(labels: Sequence[str], series: dict[str, Sequence[tuple[int, float, float | None, float | None]]],
               ylabel: str, title: str = "", steps: Sequence[int] = ()) -> str:
    """Values across commits: one line per machine, CI bars, commits on the x axis, steps as dashed lines.

    Args:
        labels: x tick labels (short commits), in order.
        series: name -> ``(x index, value, ci_low, ci_high)`` points.
        steps: x positions where a step was detected (drawn between ``x - 1`` and ``x``).
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    for i, (name, pts) in enumerate(series.items()):
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        err = [[max(0.0, p[1] - p[2]) if p[2] is not None else 0.0 for p in pts],
               [max(0.0, p[3] - p[1]) if p[3] is not None else 0.0 for p in pts]]
        ax.errorbar(xs, ys, yerr=err, marker=MARKERS[i % len(MARKERS)], ms=4, lw=1.5, capsize=3,
                    color=PALETTE[i % len(PALETTE)], label=plain(name, 50))
    for x in steps:
        ax.axvline(x - 0.5, color="#cf222e", ls="--", lw=1)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels([plain(lab, 12) for lab in labels], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(plain(ylabel))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    if title:
        ax.set_title(plain(title, 90), fontsize=10)
    return _svg(fig)
