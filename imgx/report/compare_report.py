"""Render a run-vs-run comparison: ``comparison.html`` (self-contained) and ``summary.md`` (for CI summaries).

The verdicts come from :mod:`imgx.compare` (``Comparison.rows`` of ``MetricComparison``); this module only
shows them, plus the images both runs saved for the same case and seed, read from their run directories.
Objects are used by attribute (duck typing), so any object with the documented fields renders.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from imgx.report.grids import Embedded, Gallery, ImageEmbedder, artifact_galleries, looks_like_image_path
from imgx.report.model import flatten
from imgx.report.render import render
from imgx.report.tables import STATUS_CSS, Table, fmt_value

log = logging.getLogger("imgx")

VERDICT_ORDER = ("regression", "inconclusive", "missing", "improvement", "new", "not-compared", "unchanged")
MAX_PAIRS = 48  # output image pairs shown side by side
MAX_ARTIFACT_CASES = 12
PAIR_SIDE = 256
MD_ROWS = 50


@dataclass
class ImagePair:
    """The same output (case, seed, prompt, input) from both runs."""

    case_id: str
    what: str
    baseline: Embedded
    candidate: Embedded
    flagged: bool = False  # the case has a regression


@dataclass
class ArtifactPair:
    """A case's artifact galleries (e.g. the colorizer grid) from both runs."""

    case_id: str
    baseline: list[Gallery] = field(default_factory=list)
    candidate: list[Gallery] = field(default_factory=list)
    flagged: bool = False


def _change_text(row: Any) -> str:
    pct = getattr(row, "change_pct", None)
    if pct is not None:
        return f"{pct:+.2f}%"
    change = getattr(row, "change", None)
    return f"{change:+.4g}" if change is not None else ""


def rows_table(rows: list[Any], title: str = "all compared metrics", filename: str = "comparison.csv") -> Table:
    """One line per compared metric: baseline, candidate, change, tolerance, verdict and why."""
    cols = ["verdict", "case_id", "metric", "reference", "baseline", "candidate", "change", "change %", "tolerance",
            "better", "noise", "detail"]
    table = Table(title, cols, filename=filename)
    order = {v: i for i, v in enumerate(VERDICT_ORDER)}
    for r in sorted(rows, key=lambda r: order.get(getattr(r, "verdict", ""), len(order))):
        verdict = getattr(r, "verdict", "")
        pct = getattr(r, "change_pct", None)
        table.add([verdict, getattr(r, "case_id", ""), getattr(r, "metric", ""), getattr(r, "reference", ""),
                   getattr(r, "baseline", None), getattr(r, "candidate", None), getattr(r, "change", None), pct,
                   getattr(r, "tolerance", ""), getattr(r, "direction", ""), getattr(r, "noise", None),
                   getattr(r, "detail", "")],
                   css={0: STATUS_CSS.get(verdict, "")},
                   display={7: f"{pct:+.2f}%" if pct is not None else ""})
    return table


def _load(run_dir: Path | None) -> tuple[list[dict[str, Any]], str]:
    """Case records of a run directory ("" or the reason they cannot be read)."""
    if run_dir is None:
        return [], "the baseline is a baseline file, not a run directory: no images to compare"
    from imgx.errors import ImgxError
    from imgx.results import load_run

    try:
        _, records = load_run(Path(run_dir))
    except ImgxError as exc:
        return [], str(exc)
    return records, ""


def _output_key(case_id: str, output: dict[str, Any]) -> tuple:
    return (case_id, *sorted((k, str(v)) for k, v in output.items() if k not in ("path", "case_id")))


def image_pairs(base_recs: list[dict[str, Any]], cand_recs: list[dict[str, Any]], base: ImageEmbedder,
                cand: ImageEmbedder, flagged: set[str], limit: int = MAX_PAIRS) -> tuple[list[ImagePair], int]:
    """Outputs present in both runs for the same case, seed, prompt and input; flagged cases first."""
    base_out = {}
    for r in base_recs:
        for o in r.get("outputs") or []:
            base_out.setdefault(_output_key(r["case_id"], o), o)
    matches = []
    for r in cand_recs:
        for o in r.get("outputs") or []:
            b = base_out.get(_output_key(r["case_id"], o))
            if b is not None and looks_like_image_path(o.get("path")) and looks_like_image_path(b.get("path")):
                matches.append((r["case_id"], o, b))
    matches.sort(key=lambda m: m[0] not in flagged)
    pairs = []
    for case_id, o, b in matches[:limit]:
        what = " · ".join(f"{k}={fmt_value(o[k])}" for k in ("prompt", "seed", "input_path") if o.get(k) not in
                          (None, ""))
        pairs.append(ImagePair(case_id, what, base.embed(b["path"], PAIR_SIDE), cand.embed(o["path"], PAIR_SIDE),
                               case_id in flagged))
    return pairs, max(0, len(matches) - limit)


def artifact_pairs(base_recs: list[dict[str, Any]], cand_recs: list[dict[str, Any]], base: ImageEmbedder,
                   cand: ImageEmbedder, flagged: set[str], limit: int = MAX_ARTIFACT_CASES) -> list[ArtifactPair]:
    """Artifact galleries of cases present in both runs (flagged cases first)."""
    by_id = {r["case_id"]: r for r in base_recs}
    both = [r for r in cand_recs if r["case_id"] in by_id and (r.get("artifacts") or by_id[r["case_id"]].get(
        "artifacts"))]
    both.sort(key=lambda r: r["case_id"] not in flagged)
    out = []
    for r in both[:limit]:
        b = by_id[r["case_id"]]
        out.append(ArtifactPair(r["case_id"], artifact_galleries(b.get("artifacts") or {}, base, max_side=560),
                                artifact_galleries(r.get("artifacts") or {}, cand, max_side=560),
                                r["case_id"] in flagged))
    return out


def _info_table(comparison: Any) -> Table | None:
    b = flatten(getattr(comparison, "baseline_info", None) or {})
    c = flatten(getattr(comparison, "candidate_info", None) or {})
    if not b and not c:
        return None
    table = Table("provenance", ["key", "baseline", "candidate"], filename="provenance.csv")
    for k in dict.fromkeys([*b, *c]):
        bv, cv = b.get(k), c.get(k)
        table.add([k, "" if bv is None else str(bv), "" if cv is None else str(cv)],
                  css={2: "warn" if bv != cv else ""})
    return table


def comparison_context(comparison: Any, baseline_dir: Path | None, candidate_dir: Path) -> dict[str, Any]:
    """What ``compare.html.j2`` needs."""
    rows = list(getattr(comparison, "rows", []) or [])
    regressions = [r for r in rows if getattr(r, "verdict", "") == "regression"]
    counts = {v: sum(1 for r in rows if getattr(r, "verdict", "") == v) for v in VERDICT_ORDER}
    flagged = {getattr(r, "case_id", "") for r in regressions}
    base_recs, base_note = _load(baseline_dir)
    cand_recs, cand_note = _load(candidate_dir)
    pairs, pairs_left, arts = [], 0, []
    if base_recs:  # a baseline JSON file has no images: nothing to put side by side
        base_emb, cand_emb = ImageEmbedder(Path(baseline_dir)), ImageEmbedder(Path(candidate_dir))
        pairs, pairs_left = image_pairs(base_recs, cand_recs, base_emb, cand_emb, flagged)
        arts = artifact_pairs(base_recs, cand_recs, base_emb, cand_emb, flagged)
    return {
        "title": "imgx comparison",
        "baseline_label": str(getattr(comparison, "baseline_label", baseline_dir or "baseline")),
        "candidate_label": str(getattr(comparison, "candidate_label", candidate_dir)),
        "verdict": "fail" if regressions else ("pass" if rows else "empty"),
        "counts": counts,
        "warnings": [str(w) for w in getattr(comparison, "warnings", []) or []],
        "environment_diffs": [str(w) for w in getattr(comparison, "environment_diffs", []) or []] + _notes(comparison),
        "latency_compared": getattr(comparison, "latency_compared", True),
        "regressions": rows_table(regressions, "regressions", "regressions.csv") if regressions else None,
        "table": rows_table(rows),
        "info": _info_table(comparison),
        "pairs": pairs,
        "pairs_left": pairs_left,
        "artifacts": arts,
        "image_note": base_note or cand_note,
        "generated": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------------------------- markdown
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def _md(text: Any) -> str:
    """A Markdown table cell: one line, pipes escaped, no raw HTML.

    Backslash escapes, not HTML entities: the text is printed to terminals and logs as well (``0.85 -> 0.81``,
    not ``-&gt;``). Only a ``<`` that could open a tag needs one (``<= 0.8`` is plain text to GitHub).
    """
    s = " ".join(str("" if text is None else text).split())
    return _TAG_START.sub(r"\\<", s.replace("\\", "\\\\").replace("|", "\\|"))


def _md_code(text: Any) -> str:
    return "`" + " ".join(str(text).split()).replace("`", "'") + "`"


def _md_rows(rows: list[Any], limit: int = MD_ROWS) -> list[str]:
    lines = ["| case | metric | baseline | candidate | change | tolerance | detail |",
             "|---|---|---:|---:|---:|---|---|"]
    for r in rows[:limit]:
        ref = getattr(r, "reference", "")
        metric = getattr(r, "metric", "") + (f" (vs {ref})" if ref else "")
        cells = [getattr(r, "case_id", ""), metric, fmt_value(getattr(r, "baseline", None)),
                 fmt_value(getattr(r, "candidate", None)), _change_text(r), getattr(r, "tolerance", ""),
                 getattr(r, "detail", "")]
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    if len(rows) > limit:
        lines.append(f"\n… and {len(rows) - limit} more (see comparison.html)")
    return lines


def _notes(comparison: Any) -> list[str]:
    """Environment differences that do not change timing (the kernel release), marked as such."""
    return [f"{n} (informational: does not block timing comparison)"
            for n in getattr(comparison, "environment_notes", []) or []]


def summary_markdown(comparison: Any) -> str:
    """Markdown for a CI step summary or a PR comment: verdict, counts, regressions, then the rest folded."""
    rows = list(getattr(comparison, "rows", []) or [])
    by = {v: [r for r in rows if getattr(r, "verdict", "") == v] for v in VERDICT_ORDER}
    regress = by["regression"]
    head = f"❌ {len(regress)} regression{'s' if len(regress) != 1 else ''}" if regress else "✅ no regression"
    if by["inconclusive"]:
        head += f", ⚠️ {len(by['inconclusive'])} inconclusive (noisy machine)"
    lines = [f"## imgx compare: {head}", "",
             f"baseline {_md_code(getattr(comparison, 'baseline_label', ''))} → candidate "
             f"{_md_code(getattr(comparison, 'candidate_label', ''))}", "",
             " · ".join(f"{v}: **{len(by[v])}**" for v in VERDICT_ORDER if by[v]) or "no metrics compared", ""]
    if not getattr(comparison, "latency_compared", True):
        lines += ["> Latency and memory were not compared: the machines differ (use `--latency` to force).", ""]
    if regress:
        lines += ["### Regressions", "", *_md_rows(regress), ""]
    if by["inconclusive"]:
        lines += ["### Inconclusive: the machine was noisy", "",
                  "Timing changes past the tolerance, measured while the candidate's own timings varied by more than "
                  "the tolerance. Not a failure; re-run on a quieter machine to judge.", "",
                  *_md_rows(by["inconclusive"]), ""]
    not_run = set(getattr(comparison, "not_run", []) or [])
    # Cases the candidate did not run are one warning line, not one row per metric.
    by["missing"] = [r for r in by["missing"] if getattr(r, "case_id", "") not in not_run]
    for verdict, title in (("missing", "Missing in the candidate"), ("improvement", "Improvements"),
                           ("new", "New in the candidate")):
        if by[verdict]:
            lines += [f"<details><summary>{title} ({len(by[verdict])})</summary>", "", *_md_rows(by[verdict]), "",
                      "</details>", ""]
    warnings = list(getattr(comparison, "warnings", []) or [])
    diffs = list(getattr(comparison, "environment_diffs", []) or []) + _notes(comparison)
    if warnings:
        lines += ["### Warnings", "", *[f"- {_md(w)}" for w in warnings[:MD_ROWS]], ""]
    if diffs:
        lines += [f"<details><summary>Environment differences ({len(diffs)})</summary>", "",
                  *[f"- {_md(d)}" for d in diffs[:MD_ROWS]], "", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_comparison(comparison: Any, out_dir: Path, baseline_dir: Path | None,
                     candidate_dir: Path) -> tuple[Path, Path]:
    """Write ``comparison.html`` and ``summary.md`` into ``out_dir``.

    Args:
        comparison: an :class:`imgx.compare.Comparison` (or any object with its fields).
        out_dir: the folder to write into (created).
        baseline_dir: the baseline run directory, or None when the baseline is a baseline JSON file.
        candidate_dir: the candidate run directory.

    Returns:
        ``(comparison.html, summary.md)`` paths.
    """
    from imgx.results import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out_dir / "comparison.html", out_dir / "summary.md"
    context = comparison_context(comparison, Path(baseline_dir) if baseline_dir else None, Path(candidate_dir))
    atomic_write_text(html_path, render("compare.html.j2", **context))
    atomic_write_text(md_path, summary_markdown(comparison))
    return html_path, md_path
