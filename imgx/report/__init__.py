"""HTML reports built from a run directory alone: ``report.html`` and run-vs-run comparisons."""

from __future__ import annotations

from pathlib import Path


def write_report(out: Path, path: Path | None = None) -> Path:
    """Render the self-contained ``report.html`` of run directory ``out``.

    Args:
        out: a run directory (``manifest.json``, ``cases/``, the tables, ``images/``).
        path: where to write the HTML; default ``out/report.html``.

    Returns:
        The path written.
    """
    from imgx.report.html import write_report as _write

    return _write(Path(out), Path(path) if path else None)


__all__ = ["write_report"]
