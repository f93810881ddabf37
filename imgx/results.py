"""Case results and the run directory: atomic ledger files, then the tidy tables built from them.

The run directory is a contract (DESIGN.md section 4); the report and comparisons read only these files.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imgx.errors import RunDirError

FORMAT = 1  # bump when the run directory changes incompatibly; newer formats are refused, not misread
RESULT_COLUMNS = ["case_id", "suite", "task", "model", "metric", "value", "unit", "reference", "n", "ci_low",
                  "ci_high", "status", "detail", "device", "dtype"]
STATUSES = ("ok", "unavailable", "skipped", "failed")


@dataclass
class MetricRow:
    """One value of one metric for one case, optionally against a named reference."""

    metric: str
    value: float | None
    unit: str = ""
    reference: str = ""
    n: int | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    status: str = "ok"
    detail: str = ""
    samples: list[float] | None = None  # the raw timings behind a latency median (ledger only, not results.csv)

    def __post_init__(self):
        for bound in ("ci_low", "ci_high"):  # no interval (n < 2) is None, not NaN
            v = getattr(self, bound)
            setattr(self, bound, float(v) if v is not None and math.isfinite(float(v)) else None)
        if self.value is not None:
            self.value = float(self.value)
            if not math.isfinite(self.value):
                self.status, self.detail = "failed", self.detail or f"non-finite value {self.value}"
                self.value = None


@dataclass
class CaseResult:
    """What a task returns: a status, metric rows, per-epoch history, saved outputs and artifacts."""

    status: str = "ok"
    detail: str = ""
    rows: list[MetricRow] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def ok_values(rows: list[dict[str, Any]]) -> dict[str, float]:
    """``{metric: value}`` of a record's own rows (no reference) whose status is ok (ledger row dicts)."""
    return {r["metric"]: r["value"] for r in rows if not r["reference"] and r["status"] == "ok"}


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # mkstemp creates 0600 files; results are meant to be shared


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Atomic write of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomic write of JSON (NaN refused: it is not JSON)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False, default=str) + "\n")


def json_safe(obj: Any) -> Any:
    """``obj`` with non-finite floats replaced by None and NumPy scalars by Python ones (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _row_dict(row: MetricRow) -> dict[str, Any]:
    """A ledger row; ``samples`` only where a row has them (latency medians), so other rows stay as they were."""
    out = asdict(row)
    if out.get("samples") is None:
        out.pop("samples", None)
    return out


def case_record(case, result: CaseResult, started: float, ended: float, gates: list[dict]) -> dict[str, Any]:
    """The ledger record of one finished case (``cases/<key>.json``), JSON-safe."""
    return json_safe({
        "format": FORMAT,
        "key": case.key,
        "case_id": case.id,
        "base_id": case.base_id,
        "index": case.index,
        "suite": case.suite,
        "task": case.task,
        "model": case.spec.model.name,
        "device": case.device,
        "dtype": case.dtype,
        "seed": case.seed,
        "params": case.params,
        "config": case.config,
        "status": result.status,
        "detail": result.detail,
        "started": started,
        "ended": ended,
        "seconds": round(ended - started, 3),
        "rows": [_row_dict(r) for r in result.rows],
        "gates": gates,
        "regression": dict(case.spec.regression),  # the tolerances that judge it: compare never reads the suite
        "history": result.history,
        "outputs": result.outputs,
        "artifacts": result.artifacts,
        "info": result.info,
    })


def write_case(out: Path, record: dict[str, Any]) -> Path:
    """Write a case record into the ledger atomically; returns its path."""
    path = out / "cases" / f"{record['key']}.json"
    atomic_write_json(path, record)
    return path


def read_ledger(out: Path) -> dict[str, dict[str, Any]]:
    """All case records in a run directory, by key. Torn or foreign files are ignored, newer formats refused."""
    records: dict[str, dict[str, Any]] = {}
    folder = Path(out) / "cases"
    if not folder.is_dir():
        return records
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or "key" not in record:
            continue
        if int(record.get("format", 0)) > FORMAT:
            raise RunDirError(f"{path}: written by a newer imgx (format {record['format']}, this imgx reads "
                              f"{FORMAT}); upgrade imgx to read it")
        records[record["key"]] = record
    return records


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def _csv_text(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return buf.getvalue()


def param_columns(records: list[dict[str, Any]]) -> list[str]:
    """The union of sweep parameter names over records, in first-seen order."""
    return list(dict.fromkeys(p for r in records for p in r.get("params", {})))


def result_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten records into ``results.csv`` rows; a case with no rows still gets one row with its status."""
    rows = []
    for rec in records:
        common = {"case_id": rec["case_id"], "suite": rec["suite"], "task": rec["task"], "model": rec["model"],
                  "device": rec["device"], "dtype": rec["dtype"], **rec.get("params", {})}
        if not rec["rows"]:
            rows.append({**common, "metric": "", "value": None, "status": rec["status"], "detail": rec["detail"]})
        for r in rec["rows"]:
            rows.append({**common, **{k: v for k, v in r.items() if k != "samples"}})
    return rows


def output_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten records' outputs into ``outputs.csv`` rows, each with its case id and sweep parameters.

    An output's own ``seed`` is its generator's; a swept ``seed`` parameter keeps its value as ``param_seed``.
    """
    return [{"case_id": r["case_id"], **{(f"param_{k}" if k in o else k): v for k, v in r.get("params", {}).items()},
             **o} for r in records for o in r.get("outputs", [])]


def write_tables(out: Path, records: list[dict[str, Any]]) -> None:
    """Write ``results.csv``, ``outputs.csv`` and ``history.csv`` from ledger records (in plan order)."""
    from imgx.agreement import derived_rows

    params = param_columns(records)
    rows = result_rows(records) + derived_rows(out, records)
    atomic_write_text(out / "results.csv", _csv_text(RESULT_COLUMNS + params, rows))
    outputs = output_rows(records)
    out_cols = list(dict.fromkeys(["case_id", *[k for o in outputs for k in o if k in params or
                                                k.startswith("param_")], "prompt", "seed", "input_path", "path"]
                                  + [k for o in outputs for k in o]))
    atomic_write_text(out / "outputs.csv", _csv_text(out_cols, outputs))
    history = [{"case_id": r["case_id"], **h} for r in records for h in r.get("history", [])]
    hist_cols = list(dict.fromkeys(["case_id", "epoch"] + [k for h in history for k in h]))
    atomic_write_text(out / "history.csv", _csv_text(hist_cols, history))


def read_manifest(out: Path) -> dict[str, Any]:
    """The manifest of a run directory, or an empty dict when there is none."""
    path = Path(out) / "manifest.json"
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc})") from None
    if int(manifest.get("format", 0)) > FORMAT:
        raise RunDirError(f"{path}: written by a newer imgx (format {manifest['format']}, this imgx reads {FORMAT}); "
                          "upgrade imgx to read it")
    return manifest


def split_superseded(manifest: dict[str, Any], records: list[dict[str, Any]]
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(current, superseded)`` ledger records: a record the suite of the last run no longer produces is superseded.

    The manifest's ``case_keys`` (every key of the last run's suite, selected or not) decides. A run directory
    written before ``case_keys`` existed keeps the newest record (by ``ended``) of each case id.
    """
    keys = manifest.get("case_keys")
    if isinstance(keys, list):
        current_keys = set(keys)
        return ([r for r in records if r["key"] in current_keys], [r for r in records if r["key"] not in current_keys])
    newest: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["case_id"] not in newest or r.get("ended", 0) >= newest[r["case_id"]].get("ended", 0):
            newest[r["case_id"]] = r
    return ([r for r in records if newest[r["case_id"]] is r], [r for r in records if newest[r["case_id"]] is not r])


def superseded_list(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a manifest and a report say of superseded records: case id, key and ledger file of each."""
    return [{"case_id": r["case_id"], "key": r["key"], "file": f"cases/{r['key']}.json"} for r in records]


def load_run(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The manifest and the current case records of a run directory, records in plan order.

    Superseded records (see :func:`split_superseded`) stay on disk but are never returned as results; the
    returned manifest lists them under ``superseded``.
    """
    out = Path(out)
    if not out.is_dir():
        raise RunDirError(f"{out}: not a run directory")
    manifest = read_manifest(out)
    records = sorted(read_ledger(out).values(), key=lambda r: (r.get("index", 0), r["case_id"]))
    if not manifest and not records:
        raise RunDirError(f"{out}: not a run directory (no manifest.json, no cases/)")
    records, superseded = split_superseded(manifest, records)
    return {**manifest, "superseded": superseded_list(superseded)}, records
