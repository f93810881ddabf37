"""The public Python API: run a suite and load a run, as pandas frames of the ``results.csv`` columns.

Everything here is re-exported by :mod:`imgx` (``imgx.run``, ``imgx.load_run``); the rest of the package is
private and may move. Bad input raises :class:`imgx.errors.ImgxError` (``.problems()`` lists the messages, each
naming the file and field), as the CLI's exit code 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

_NUMERIC = ("value", "n", "ci_low", "ci_high")


@dataclass
class RunResult:
    """A run directory and its results.

    Attributes:
        run_dir: the run directory (``manifest.json``, ``cases/``, ``results.csv``, ``report.html``).
        results: ``results.csv`` as a DataFrame: one row per (case, metric, reference); ``reference`` is ``""``
            for the model under test; ``value`` is NaN where ``status`` is not ``ok``.
        manifest: ``manifest.json`` (versions, suite, command, machine).
        records: the ledger records (``cases/*.json``), including each case's ``gates``.
        exit_code: what ``imgx run`` would exit with (0 all good, 1 a case or gate failed); None for a loaded run.
    """

    run_dir: Path
    results: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None

    def value(self, metric: str, case_id: str | None = None, reference: str = "") -> float:
        """The ``ok`` value of one metric row (of ``case_id``, or of the only case); NaN when it has none."""
        df = self.results
        rows = df[(df["metric"] == metric) & (df["reference"] == reference) & (df["status"] == "ok")]
        if case_id is not None:
            rows = rows[rows["case_id"] == case_id]
        if len(rows) > 1:
            raise ValueError(f"{len(rows)} rows of {metric!r} (cases {sorted(set(rows['case_id']))}); name case_id")
        return float(rows["value"].iloc[0]) if len(rows) else math.nan

    @property
    def gate_failures(self) -> list[str]:
        """``"case: detail"`` for every gate that failed."""
        return [f"{r['case_id']}: {g['detail']}" for r in self.records for g in r.get("gates") or []
                if g.get("passed") is False]


def run(suite: str | Path | dict[str, Any], out: str | Path | None = None, *, device: str = "all",
        filters: list[str] | None = None, report: bool = True, quiet: bool = True) -> RunResult:
    """Run (or resume) a suite and return its results.

    Args:
        suite: a suite YAML file, or the same suite as a dict (relative paths then resolve against the working
            directory).
        out: the run directory; a new ``reports/<suite>/<timestamp>/`` when None; an existing one resumes.
        device: ``cpu``, ``cuda`` or ``all`` (every case the suite declares).
        filters: keep only the cases these ``-k`` filters select.
        report: write ``report.html``.
        quiet: no progress bars.

    Raises:
        imgx.errors.ImgxError: a bad suite, path or model (nothing has run), or bad input found part-way.
    """
    from imgx.runner import run_suite

    summary = run_suite(suite, out, device=device, filters=filters, quiet=quiet, report=report,
                        argv=["imgx.run", str(suite) if not isinstance(suite, dict) else "<suite dict>"])
    loaded = load_run(summary.out)
    loaded.exit_code = summary.exit_code
    return loaded


def load_run(run_dir: str | Path) -> RunResult:
    """Load a run directory written by ``imgx run`` (any imgx version this one reads).

    Raises:
        imgx.errors.RunDirError: not a run directory, or written by a newer imgx.
    """
    import pandas as pd

    from imgx.results import RESULT_COLUMNS, result_rows
    from imgx.results import load_run as load_records

    path = Path(run_dir)
    manifest, records = load_records(path)
    csv = path / "results.csv"
    if csv.is_file():
        df = pd.read_csv(csv, keep_default_na=False, na_values={c: [""] for c in _NUMERIC})
    else:  # a run stopped before its tables were written: the ledger has the same rows
        df = pd.DataFrame(result_rows(records))
        df = df.reindex(columns=list(dict.fromkeys([*RESULT_COLUMNS, *df.columns])))
    for column in _NUMERIC:
        if column in df:
            df[column] = pd.to_numeric(df[column], errors="coerce")
    for column in ("reference", "detail", "metric", "status"):
        if column in df:
            df[column] = df[column].fillna("").astype(str)
    return RunResult(run_dir=path, results=df, manifest=manifest, records=records)
