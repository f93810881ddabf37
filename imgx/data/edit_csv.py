"""Row checks of an ``edit-csv`` file that need no image decoding (and no torch), shared by the loader and
``imgx validate``."""

from __future__ import annotations

import csv
from pathlib import Path


def edit_csv_problems(path: Path, rows: list[dict[str, str]] | None = None) -> list[str]:
    """One message per row of an edit CSV whose image or instruction is empty or whose files are missing.

    Reads only the CSV and checks that files exist (nothing decoded), so ``imgx validate`` can call it.
    """
    path = Path(path)
    if rows is None:
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            return [f"{path}: cannot read as a UTF-8 CSV ({exc})"]
    problems = []
    for i, row in enumerate(rows, start=2):  # line 1 is the header
        if not (row.get("image") or "").strip() or not (row.get("instruction") or "").strip():
            problems.append(f"{path}:{i}: empty image or instruction")
            continue
        for column in ("image", "target"):
            name = (row.get(column) or "").strip()
            if name and not (path.parent / name).is_file():
                problems.append(f"{path}:{i}: {column} {name!r}: no such file (relative to the CSV)")
    return problems
