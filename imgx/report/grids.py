"""Images for the report: run-directory images embedded as downscaled data URIs, and guidance grids.

Only files inside the run directory are read (a path in a CSV is data, never an instruction to open an
arbitrary file), each through :func:`imgx.imageio.open_rgb` and its pixel limit. Missing or unreadable images
become a text placeholder, so a report never shows a broken image.
"""

from __future__ import annotations

import base64
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from imgx.imageio import IMAGE_SUFFIXES

log = logging.getLogger("imgx")

GRID_MAX_SIDE = 900  # artifact grids: wide enough to read, small enough for a few-MB report
THUMB_MAX_SIDE = 160  # one output in a guidance grid
EDIT_IMAGE_BUDGET = 360  # at most this many thumbnails across all edit grids; the rest is counted, not embedded
BYTE_BUDGET = 12_000_000  # encoded image bytes per page; past it images become a note, the page stays openable
STRIP_SIDE = 160  # frames of a per-epoch filmstrip
TILE_SIDE = 160  # reference pictures shown as a small tile
TILE_ARTIFACTS = {"untrained"}
GALLERY_ITEMS = 24  # at most this many images from one list artifact


@dataclass
class Embedded:
    """An image ready for ``<img src=...>`` (``uri`` empty when it could not be read; ``note`` says why)."""

    uri: str = ""
    width: int = 0
    height: int = 0
    source: str = ""
    note: str = ""
    pixelated: bool = False  # small originals are shown enlarged without smoothing

    @property
    def ok(self) -> bool:
        return bool(self.uri)


def looks_like_image_path(value: Any) -> bool:
    """True for a string that names an image file (by suffix); labels and numbers are not image paths."""
    return isinstance(value, str) and value.lower().endswith(tuple(IMAGE_SUFFIXES)) and "\n" not in value


def resolve_in_run(out: Path, rel: str) -> Path | None:
    """``out/rel`` when it stays inside ``out`` (no ``..`` escape, no absolute path elsewhere), else None."""
    if not rel or not isinstance(rel, str):
        return None
    root = Path(out).resolve()
    try:
        target = (root / rel).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if target != root and root not in target.parents:
        return None
    return target


def _encode(img: Image.Image) -> tuple[bytes, str]:
    """The smaller of lossless PNG and WebP (q=85); PNG wins ties within 25% (sharp tiles stay exact)."""
    png = io.BytesIO()
    img.save(png, format="PNG", optimize=False, compress_level=6)
    webp = io.BytesIO()
    img.save(webp, format="WEBP", quality=85, method=4)
    if png.tell() <= webp.tell() * 1.25:
        return png.getvalue(), "image/png"
    return webp.getvalue(), "image/webp"


class ImageEmbedder:
    """Turns run-directory image paths into data URIs, once per (path, size)."""

    def __init__(self, out: Path, byte_budget: int = BYTE_BUDGET):
        self.out = Path(out)
        self._cache: dict[tuple[str, int], Embedded] = {}
        self.bytes_embedded = 0
        self.count = 0
        self.byte_budget = byte_budget
        self.over_budget = 0  # images left out for the budget

    def embed(self, rel: str, max_side: int = GRID_MAX_SIDE) -> Embedded:
        """Embed ``out/rel`` downscaled to at most ``max_side`` pixels on its longer side."""
        key = (str(rel), max_side)
        if key not in self._cache:
            if self.bytes_embedded >= self.byte_budget:
                self.over_budget += 1
                return Embedded(source=str(rel), note="not embedded (report size budget reached); see the file")
            self._cache[key] = self._load(str(rel), max_side)
        return self._cache[key]

    def _load(self, rel: str, max_side: int) -> Embedded:
        from imgx.errors import DataError
        from imgx.imageio import open_rgb

        path = resolve_in_run(self.out, rel)
        if path is None:
            return Embedded(source=rel, note="not inside the run directory")
        if not path.is_file():
            return Embedded(source=rel, note="image file missing")
        try:
            img = open_rgb(path)
        except DataError as exc:
            return Embedded(source=rel, note=f"unreadable image: {exc}")
        small = max(img.size) <= 96
        if max(img.size) > max_side:
            img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        data, mime = _encode(img)
        self.bytes_embedded += len(data)
        self.count += 1
        uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        return Embedded(uri=uri, width=img.size[0], height=img.size[1], source=rel, pixelated=small)


# ------------------------------------------------------------------------------------------ artifacts
@dataclass
class Figure:
    """One captioned image of an artifact gallery."""

    caption: str
    image: Embedded


@dataclass
class Gallery:
    """An artifact: a title, its figures, and row labels for a grid image (top to bottom)."""

    title: str
    figures: list[Figure] = field(default_factory=list)
    row_labels: list[str] = field(default_factory=list)
    strip: bool = False  # a series (per-epoch samples): one row of small frames that scrolls sideways


def artifact_galleries(artifacts: dict[str, Any], embedder: ImageEmbedder, epochs: list[Any] | None = None,
                       max_side: int = GRID_MAX_SIDE, skip: set[str] | frozenset[str] = frozenset()) -> list[Gallery]:
    """Galleries from a case's ``artifacts``: ``name -> path``, ``name -> [paths]`` or ``name -> {label: path}``.

    ``<name>_rows`` (a list of strings) labels the rows of grid ``<name>``; ``<name>_labels`` labels the items of
    list ``<name>``. A list whose length equals the number of history epochs is captioned by epoch. Anything
    that is not an image path is ignored (tasks may store other notes there), and so are the names in ``skip``
    (e.g. an edit case's ``outputs``, which the guidance grids show). Long lists show their first
    ``GALLERY_ITEMS`` images.
    """
    if not isinstance(artifacts, dict):
        return []
    galleries = []
    for name, value in artifacts.items():
        if name in skip or (name.endswith(("_rows", "_labels")) and isinstance(value, list)):
            continue
        title = str(name).replace("_", " ")
        rows = artifacts.get(f"{name}_rows")
        row_labels = [str(x) for x in rows] if isinstance(rows, list) else []
        if looks_like_image_path(value):
            # a reference picture (the generator before training) is context: a small tile, not a full grid
            side = TILE_SIDE if name in TILE_ARTIFACTS else max_side
            galleries.append(Gallery(title, [Figure("", embedder.embed(value, side))], row_labels))
        elif isinstance(value, list):
            paths = [v for v in value if looks_like_image_path(v)]
            if not paths:
                continue
            labels = artifacts.get(f"{name}_labels")
            if isinstance(labels, list) and len(labels) == len(paths):
                captions = [str(x) for x in labels]
            elif epochs and len(epochs) == len(paths):
                captions = [f"epoch {e}" for e in epochs]
            else:
                captions = [f"{i + 1}" for i in range(len(paths))]
            side = max_side if len(paths) == 1 else min(max_side, STRIP_SIDE)
            pairs = list(zip(captions, paths, strict=True))
            if len(pairs) > GALLERY_ITEMS:  # keep the first and the last (e.g. epochs), evenly spaced between
                idx = sorted({round(i * (len(pairs) - 1) / (GALLERY_ITEMS - 1)) for i in range(GALLERY_ITEMS)})
                pairs = [pairs[i] for i in idx]
                title += f" ({len(idx)} of {len(paths)})"
            figures = [Figure(c, embedder.embed(p, side)) for c, p in pairs]
            galleries.append(Gallery(title, figures, row_labels, strip=len(figures) > 1))
        elif isinstance(value, dict):
            figures = [Figure(str(k), embedder.embed(v, min(max_side, 320))) for k, v in value.items()
                       if looks_like_image_path(v)]
            if figures:
                galleries.append(Gallery(title, figures, row_labels))
    return galleries


# ---------------------------------------------------------------------------------------- edit grids
@dataclass
class GuidanceGrid:
    """Outputs of one input and prompt: image guidance down the rows, text guidance across the columns."""

    input_label: str
    input_image: Embedded | None
    prompt: str
    fixed: dict[str, str]  # the other settings shared by every cell (scheduler, steps, seed, device...)
    row_axis: str
    col_axis: str
    row_values: list[str]
    col_values: list[str]
    cells: dict[tuple[str, str], Embedded]
    random_weights: bool = False


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return text  # integers (seeds, steps) exactly, never in exponent notation
    if re.fullmatch(r"-?(\d+\.\d*|\.\d+)", text):
        return f"{float(text):g}"  # "7.50" and "7.5" are the same guidance value
    return text


def _sort_key(text: str):
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() not in ("false", "0", "no", "")


def guidance_grids(outputs: list[dict[str, Any]], embedder: ImageEmbedder, random_cases: set[str],
                   params: dict[str, dict[str, Any]] | None = None, row_axis: str = "image_guidance_scale",
                   col_axis: str = "guidance_scale", budget: int = EDIT_IMAGE_BUDGET) -> tuple[list[GuidanceGrid], int]:
    """Group edit outputs (``outputs.csv`` rows) into guidance grids; returns the grids and how many outputs were
    left out for the image budget.

    A grid holds the outputs that share input, prompt, seed and every other sweep setting of their case
    (``params``: case id -> sweep point; without it, every output column but the per-output ones); its cells
    are indexed by the two guidance values (``-`` where a row lacks the column). The input shown is the copy
    saved in the run directory (``input_image``), else ``input_path`` when that lies inside the run directory.
    """
    per_output = {"case_id", "path", "prompt", "input_path", "input_image", "input_name", "valid", "invalid_reason",
                  "clip_tokens", "weights", "generator_device", row_axis, col_axis}
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in outputs:
        cid = str(row.get("case_id"))
        if params is not None and cid in params:
            source = {k: v for k, v in params[cid].items() if k not in (row_axis, col_axis)}
            source["seed"] = row.get("seed")
        else:
            source = {k: v for k, v in row.items() if k not in per_output}
        fixed = tuple((k, _fmt(v)) for k, v in source.items() if _fmt(v) != "")
        src = str(row.get("input_image") or row.get("input_path") or "")
        name = str(row.get("input_name") or row.get("input_path") or src)
        groups.setdefault((src, name, str(row.get("prompt") or ""), fixed), []).append(row)
    grids, left_out, used = [], 0, 0
    for (src, name, prompt, fixed), rows in groups.items():
        if used + len(rows) > budget:
            left_out += len(rows)
            continue
        used += len(rows)
        cells: dict[tuple[str, str], Embedded] = {}
        for r in rows:
            cell = embedder.embed(str(r.get("path") or ""), THUMB_MAX_SIDE)
            if "valid" in r and not _truthy(r.get("valid")):
                cell = Embedded(cell.uri, cell.width, cell.height, cell.source,
                                f"invalid: {r.get('invalid_reason') or 'excluded from metrics'}", cell.pixelated)
            cells[(_fmt(r.get(row_axis)) or "-", _fmt(r.get(col_axis)) or "-")] = cell
        input_image = embedder.embed(src, THUMB_MAX_SIDE) if looks_like_image_path(src) else None
        if input_image is not None and not input_image.ok:
            input_image = None  # an input outside the run directory is named, not shown
        grids.append(GuidanceGrid(
            input_label=name, input_image=input_image, prompt=prompt,  # "" for text-to-image: no input
            fixed=dict(fixed), row_axis=row_axis, col_axis=col_axis,
            row_values=sorted({k[0] for k in cells}, key=_sort_key),
            col_values=sorted({k[1] for k in cells}, key=_sort_key), cells=cells,
            random_weights=any(str(r.get("case_id")) in random_cases for r in rows)))
    return grids, left_out


# ------------------------------------------------------------------------------------ compact edit grids
EDIT_CELL_SIDE = 96  # embedded side of one edit output; CSS draws it at a readable, fixed size
SWEEP_ORDER = ("scheduler", "num_inference_steps", "image_guidance_scale", "guidance_scale")
_SHORT = {"image_guidance_scale": "ig", "guidance_scale": "g", "num_inference_steps": "steps"}


@dataclass
class EditRow:
    """One instruction on one input: its target (when the run saved one) and an output per sweep column."""

    prompt: str
    target: Embedded | None
    cells: list[Embedded | None]


@dataclass
class EditGrid:
    """Every output of one input: instructions down the rows; the input once, the target, then one column per
    sweep setting (image guidance x text guidance x scheduler x steps) side by side."""

    input_label: str
    input_image: Embedded | None
    columns: list[str]
    rows: list[EditRow]
    fixed: dict[str, str]
    random_weights: bool = False

    @property
    def has_target(self) -> bool:
        return any(r.target is not None for r in self.rows)


def _setting(row: dict[str, Any], params: dict[str, dict[str, Any]] | None) -> dict[str, str]:
    """The sweep setting of an output: its case's sweep point (``params``) else the row's generation columns.

    Seeds are not a setting: each input and instruction keeps its seed across the sweep.
    """
    cid = str(row.get("case_id"))
    if params is not None and cid in params:
        point = dict(params[cid])
    else:
        point = {k: row.get(k) for k in SWEEP_ORDER if row.get(k) not in (None, "")}
    return {k: _fmt(v) for k, v in point.items() if _fmt(v) != ""}


def edit_grids(outputs: list[dict[str, Any]], embedder: ImageEmbedder, random_cases: set[str],
               params: dict[str, dict[str, Any]] | None = None,
               budget: int = EDIT_IMAGE_BUDGET) -> tuple[list[EditGrid], int]:
    """One compact grid per input (``outputs.csv`` rows); returns the grids and how many outputs were left out
    for the image budget.

    Columns are the sweep settings that vary across the outputs (labelled by what varies: ``ig=1.5, ddim``);
    what every output shares is listed once above the grid. A ``target_image`` column (or ``target_path``), when
    a task saved one, fills the target column.
    """
    settings = [_setting(r, params) for r in outputs]
    keys = list(dict.fromkeys(k for s in settings for k in s))
    varying = [k for k in keys if len({s.get(k, "") for s in settings}) > 1]
    varying.sort(key=lambda k: SWEEP_ORDER.index(k) if k in SWEEP_ORDER else -1)
    fixed_all = {k: settings[0][k] for k in keys if k not in varying and k in settings[0]}

    def column(s: dict[str, str]) -> str:
        return ", ".join(s.get(k, "-") if k == "scheduler" else f"{_SHORT.get(k, k)}={s.get(k, '-')}"
                         for k in varying) or "output"

    by_input: dict[str, list[tuple[dict[str, Any], str]]] = {}
    for row, s in zip(outputs, settings, strict=True):
        src = str(row.get("input_image") or row.get("input_path") or "")
        by_input.setdefault(src, []).append((row, column(s)))
    col_order = {}
    for s in sorted(settings, key=lambda s: tuple(_sort_key(s.get(k, "")) for k in varying)):
        col_order.setdefault(column(s), len(col_order))
    grids, left_out, used = [], 0, 0
    for src, items in by_input.items():
        if used + len(items) > budget:
            left_out += len(items)
            continue
        used += len(items)
        columns = sorted({c for _, c in items}, key=col_order.__getitem__)
        prompts = list(dict.fromkeys(str(r.get("prompt") or "") for r, _ in items))
        rows = []
        for prompt in prompts:
            cells: list[Embedded | None] = [None] * len(columns)
            target = None
            for r, c in items:
                if str(r.get("prompt") or "") != prompt:
                    continue
                cell = embedder.embed(str(r.get("path") or ""), EDIT_CELL_SIDE)
                if "valid" in r and not _truthy(r.get("valid")):
                    cell = Embedded(cell.uri, cell.width, cell.height, cell.source,
                                    f"invalid: {r.get('invalid_reason') or 'excluded from metrics'}", cell.pixelated)
                if cells[columns.index(c)] is None:  # several samples per setting: the first
                    cells[columns.index(c)] = cell
                tpath = r.get("target_image") or r.get("target_path")
                if target is None and looks_like_image_path(tpath):
                    target = embedder.embed(str(tpath), EDIT_CELL_SIDE)
            rows.append(EditRow(prompt, target if target is not None and target.ok else None, cells))
        input_image = embedder.embed(src, EDIT_CELL_SIDE) if looks_like_image_path(src) else None
        first = items[0][0]
        grids.append(EditGrid(
            input_label=str(first.get("input_name") or first.get("input_path") or src),
            input_image=input_image if input_image is not None and input_image.ok else None,
            columns=columns, rows=rows, fixed=fixed_all,
            random_weights=any(str(r.get("case_id")) in random_cases for r, _ in items)))
    return grids, left_out
