"""Tables for the HTML pages: display text, sort keys and a CSV download, rendered (escaped) by the template.

A :class:`Table` holds plain strings; the template escapes them (Jinja2 autoescape), the inline script sorts
by ``data-v`` (numbers numerically) and filters rows, and the CSV link is a ``data:`` URI of the raw values.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

_IDS = itertools.count()


def fmt_value(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits (integers as they are), anything else as text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:.0f}"
    text = str(value)
    num = to_float(text)
    if num is not None and re.fullmatch(r"\s*-?\d*\.\d+(e-?\d+)?\s*|\s*-?\d+\.\d*(e-?\d+)?\s*", text):
        return fmt_value(num, digits)
    return text


def to_float(value: Any) -> float | None:
    """``value`` as a finite float, else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


@dataclass
class Cell:
    """One table cell: what is shown, what it sorts by, and an optional CSS class (ok, bad, warn, muted)."""

    text: str
    sort: str = ""
    css: str = ""
    title: str = ""


def csv_data_uri(text: str) -> str:
    """A ``data:`` URI that downloads ``text`` as CSV from a self-contained page."""
    return "data:text/csv;charset=utf-8," + quote(text, safe="")


@dataclass
class Table:
    """A table with a title, columns, rows of cells and the raw values for its CSV download."""

    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    raw: list[list[Any]] = field(default_factory=list)
    filename: str = "table.csv"
    note: str = ""
    id: str = field(default_factory=lambda: f"t{next(_IDS)}")
    _num: dict[int, list[int]] = field(default_factory=dict)  # column -> [numeric cells, text cells]

    def add(self, values: list[Any], css: dict[int, str] | None = None, titles: dict[int, str] | None = None,
            display: dict[int, str] | None = None) -> None:
        """Append a row of raw values; numbers are shown rounded but sort and download exactly."""
        cells = []
        for i, v in enumerate(values):
            num = to_float(v)
            text = display[i] if display and i in display else fmt_value(v)
            cells.append(Cell(text=text, sort=repr(num) if num is not None else str(v if v is not None else ""),
                              css=(css or {}).get(i, ""), title=(titles or {}).get(i, "")))
            counts = self._num.setdefault(i, [0, 0])
            if num is not None and not isinstance(v, bool):
                counts[0] += 1
            elif v not in (None, ""):
                counts[1] += 1
        self.rows.append(cells)
        self.raw.append(values)

    @property
    def numeric(self) -> set[int]:
        """Columns whose non-empty cells are all numbers (right-aligned)."""
        return {i for i, (n, t) in self._num.items() if n and not t}

    @property
    def csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.raw:
            writer.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row])
        return buf.getvalue()

    @property
    def csv_uri(self) -> str:
        return csv_data_uri(self.csv_text)

    @property
    def filterable(self) -> bool:
        return len(self.rows) > 5


def from_records(title: str, rows: list[dict[str, Any]], columns: list[str] | None = None,
                 filename: str = "table.csv", note: str = "") -> Table:
    """A table of dict rows (columns: given, else the union of keys in first-seen order)."""
    cols = columns or list(dict.fromkeys(k for r in rows for k in r))
    table = Table(title, cols, filename=filename, note=note)
    for r in rows:
        table.add([r.get(c) for c in cols], css=_status_css(cols, r))
    return table


def _status_css(cols: list[str], row: dict[str, Any]) -> dict[int, str]:
    css = {}
    for i, c in enumerate(cols):
        v = row.get(c)
        if c in ("status", "verdict", "passed"):
            css[i] = STATUS_CSS.get(str(v).lower(), "")
    return css


STATUS_CSS = {"ok": "ok", "true": "ok", "passed": "ok", "improvement": "ok", "unavailable": "warn",
              "skipped": "muted", "failed": "bad", "false": "bad", "regression": "bad", "missing": "warn",
              "new": "muted", "not-compared": "muted", "unchanged": "", "inconclusive": "warn"}
