"""Plan, execute and resume a suite. The CLI, the pytest plugin and ``accelerate launch`` all come here.

Each finished case is written to the ledger (``cases/<key>.json``) before the next starts, so a crash or
Ctrl-C loses at most the case in progress; the tables are rebuilt from the ledger at the end.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import operator
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from imgx import __version__
from imgx.env import default_cache_dir
from imgx.errors import ImgxError, RunDirError, TrainingDiverged
from imgx.results import (
    FORMAT,
    CaseResult,
    atomic_write_json,
    case_record,
    ok_values,
    read_ledger,
    read_manifest,
    write_case,
    write_tables,
)
from imgx.suite import Case, expand, load_suite
from imgx.suite.schema import GATE_PATTERN

log = logging.getLogger("imgx")
_OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le, ">": operator.gt,
                                                   "<": operator.lt}


@dataclass
class RunContext:
    """What a task may use besides its case: where to write, how to report progress, shared resources.

    ``resources`` lives for the whole process, so a task can keep a loaded pipeline or a cached
    feature extractor across the cases that share it. ``plan`` lists the cases this process will still run, in
    order, so that a task can compute later cases' outputs ahead (batched sweeps, :mod:`imgx.tasks.batched_sweep`).
    """

    out: Path
    quiet: bool = False
    cache_dir: Path = field(default_factory=default_cache_dir)
    resources: dict[str, Any] = field(default_factory=dict)
    process_index: int = 0
    num_processes: int = 1
    plan: list[Case] = field(default_factory=list)

    @property
    def images_dir(self) -> Path:
        return self.out / "images"

    def progress(self, iterable: Iterable | None = None, **kwargs):
        """A tqdm progress bar, silent under ``--quiet`` or when stderr is not a terminal."""
        from tqdm.auto import tqdm

        disable = self.quiet or not sys.stderr.isatty()
        return tqdm(iterable, disable=disable, leave=False, dynamic_ncols=True, **kwargs)

    def save_image(self, array, *parts: object) -> str:
        """Save ``(H, W, C)`` uint8 under ``images/`` with a safe name from ``parts``; returns the relative path."""
        from imgx.imageio import safe_name, save_png

        path = save_png(array, self.images_dir, safe_name(*parts))
        return str(path.relative_to(self.out.resolve()))


def evaluate_gates(case: Case, status: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check the case's gates against its own (reference-free) metric rows, as in a ledger record."""
    gates = []
    values = ok_values(rows)
    for metric, expr in case.spec.gates.items():
        op, bound = re.match(GATE_PATTERN, expr).group(1, 2)
        value = values.get(metric)
        if status != "ok":
            passed, detail = None, f"not evaluated: case {status}"
        elif value is None:
            passed, detail = False, f"{metric} has no ok value in this case"
        else:
            passed = _OPS[op](value, float(bound))
            detail = f"{metric} = {value:.6g}, required {op} {bound}"
        gates.append({"metric": metric, "op": op, "bound": float(bound), "value": value, "passed": passed,
                      "detail": detail})
    return gates


@dataclass
class RunSummary:
    """What a run did: the cases it ran or reused, and the exit code it implies."""

    out: Path
    records: list[dict[str, Any]]
    ran: int = 0
    reused: int = 0

    @property
    def gate_failures(self) -> list[str]:
        return [f"{r['case_id']}: {g['detail']}" for r in self.records for g in r["gates"] if g["passed"] is False]

    @property
    def failed_cases(self) -> list[str]:
        return [f"{r['case_id']}: {r['detail']}" for r in self.records if r["status"] == "failed"]

    @property
    def exit_code(self) -> int:
        return 1 if self.gate_failures or self.failed_cases else 0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out


class RunLock:
    """An exclusive lock on a run directory (``.lock``); the OS releases it when the process dies."""

    def __init__(self, out: Path):
        self.path = out / ".lock"
        self.fh = None

    def __enter__(self):
        self.fh = open(self.path, "a+")  # noqa: SIM115 - held for the lifetime of the run
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.seek(0)
            holder = self.fh.read().strip() or "unknown"
            self.fh.close()
            raise RunDirError(f"{self.path.parent}: another imgx run is writing here (pid {holder}); "
                              "wait for it or choose another --out") from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(str(os.getpid()))
        self.fh.flush()
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def default_out(suite_name: str) -> Path:
    """``reports/<suite>/<YYYYmmdd-HHMMSS>/``."""
    return Path("reports") / suite_name / datetime.now().strftime("%Y%m%d-%H%M%S")


def prepare_out(out: Path, suite) -> Path:
    """Create the run directory, refusing a file, a newer run format, or a folder inside the suite's own data."""
    out = Path(out)
    for spec in suite.cases:
        for where in (spec.data.path, spec.data.root):
            if where and Path(where).is_dir() and Path(out).resolve().is_relative_to(Path(where).resolve()):
                raise RunDirError(f"--out {out}: inside the data folder {where} of case {spec.id!r}; its images "
                                  "would become inputs of the next run. Choose an --out outside it")
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"--out {out}: cannot create ({exc.strerror})") from None
    if not os.access(out, os.W_OK):
        raise RunDirError(f"--out {out}: not writable")
    read_manifest(out)  # refuses a newer format
    return out


def select(cases: list[Case], filters: list[str] | None) -> list[Case]:
    """Cases whose id contains any of ``filters`` (case-insensitive); all cases without filters."""
    if not filters:
        return cases
    needles = [f.lower() for f in filters]
    return [c for c in cases if any(n in c.id.lower() for n in needles)]


def shard(cases: list[Case], index: int, count: int) -> list[Case]:
    """This process's share, keeping cases that share a loaded model together (grouped by model settings)."""
    if count <= 1:
        return cases
    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(_model_group(c), []).append(c)
    ordered = [c for g in groups.values() for c in g]
    per = -(-len(ordered) // count)
    return ordered[index * per:(index + 1) * per]


def _model_group(case: Case) -> str:
    m = case.spec.model
    return f"{case.task}|{m.name}|{m.weights}|{case.device}|{m.dtype}"


def order_for_reuse(cases: list[Case]) -> list[Case]:
    """Run cases that share a loaded pipeline back to back (stable: file order within a group)."""
    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(_model_group(c), []).append(c)
    return [c for g in groups.values() for c in g]


def run_case(case: Case, ctx: RunContext) -> CaseResult:
    """Run one case through its task, turning failures into a ``failed`` result with the reason."""
    from imgx.env import device_unavailable_reason, seed_everything
    from imgx.tasks import TASKS

    reason = device_unavailable_reason(case.device)
    if reason:
        return CaseResult(status="skipped", detail=reason)
    import torch

    threads = torch.get_num_threads()
    if case.spec.cpu_threads:
        torch.set_num_threads(case.spec.cpu_threads)
    seed_everything(case.seed)
    try:
        return TASKS.get(case.task)(case, ctx)
    except ImgxError:
        raise
    except OSError as exc:
        if exc.errno in _STORAGE_ERRORS:  # the machine, not the case: stop, keep the ledger, resume later
            raise
        return _failed(case, ctx, exc)
    except TrainingDiverged as exc:
        return CaseResult(status="failed", detail=f"training diverged: {exc}")
    except torch.cuda.OutOfMemoryError as exc:
        torch.cuda.empty_cache()
        return CaseResult(status="failed", detail=f"CUDA out of memory: {str(exc).splitlines()[0]}")
    except Exception as exc:  # noqa: BLE001 - a broken case is recorded, the suite goes on
        return _failed(case, ctx, exc)
    finally:
        torch.set_num_threads(threads)


_STORAGE_ERRORS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS}


def _failed(case: Case, ctx: RunContext, exc: BaseException) -> CaseResult:
    log_path = ctx.out / "logs" / f"{case.key}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(traceback.format_exc(), encoding="utf-8")
    log.error("case %s failed: %s: %s (traceback in %s)", case.id, type(exc).__name__, exc, log_path)
    return CaseResult(status="failed", detail=f"{type(exc).__name__}: {exc}"[:2000])


def execute(case: Case, ctx: RunContext, ledger: dict[str, dict[str, Any]], *, fresh: bool = False
            ) -> tuple[dict[str, Any], bool]:
    """Reuse the case's ledger record (unless ``fresh`` or it was skipped) or run it and write it to the ledger.

    Returns the record and whether the case ran now. Shared by ``run_suite`` and the pytest plugin.
    """
    previous = ledger.get(case.key)
    if not fresh and previous is not None and previous["status"] != "skipped":
        # Gates are not part of the key: judge a reused case by the suite as it is now.
        previous["gates"] = evaluate_gates(case, previous["status"], previous["rows"])
        return previous, False
    log.info("running %s", case.id)
    t0 = time.time()
    result = run_case(case, ctx)
    record = case_record(case, result, t0, time.time(), [])
    record["gates"] = evaluate_gates(case, record["status"], record["rows"])
    write_case(ctx.out, record)
    ledger[case.key] = record
    return record, True


def pending(cases: list[Case], ledger: dict[str, dict[str, Any]]) -> list[Case]:
    """The cases :func:`execute` will run rather than reuse from the ledger (``RunContext.plan``)."""
    return [c for c in cases if c.key not in ledger or ledger[c.key]["status"] == "skipped"]


def plan(suite_path: str | Path, device: str = "all", filters: list[str] | None = None) -> tuple[Any, list[Case]]:
    """Load and validate a suite, expand it, and keep the cases selected by ``device`` and ``filters``."""
    suite = load_suite(suite_path)
    cases = expand(suite)
    if device != "all":
        cases = [c for c in cases if c.device == device or c.device.startswith(device + ":")]
    return suite, select(cases, filters)


def write_manifest(out: Path, suite, argv: list[str], started: str, ended: str | None, extra: dict,
                   machine: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``manifest.json``: versions, suite provenance, command line, times and the machine; returns it.

    ``machine`` (the pytest plugin's ``pytest_imgx_machine_info`` result) goes under ``environment.machine``.
    """
    from imgx.env import fingerprint, git_commit

    uses_cuda = any(str(r.get("device", "")).startswith("cuda") for r in extra.get("records", []))
    manifest = {
        "format": FORMAT,
        "imgx_version": __version__,
        "git_commit": git_commit(str(Path(__file__).resolve().parent)),
        "suite": suite.name,
        "suite_path": str(suite.path),
        "suite_sha256": suite.sha256,
        "description": suite.spec.description,
        "command": argv,
        "seed": suite.spec.seed,
        "started": started,
        "ended": ended,
        "environment": fingerprint(use_cuda=uses_cuda or None),
        **{k: v for k, v in extra.items() if k != "records"},
    }
    if machine is not None:
        manifest["environment"]["machine"] = machine
    atomic_write_json(out / "manifest.json", manifest)
    return manifest


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_suite(suite_path: str | Path, out: str | Path | None = None, *, device: str = "all",
              filters: list[str] | None = None, quiet: bool = False, argv: list[str] | None = None,
              process_index: int = 0, num_processes: int = 1, report: bool = True,
              on_case: Callable[[Case, dict[str, Any]], None] | None = None) -> RunSummary:
    """Run (or resume) a suite into a run directory.

    Cases already in the ledger are reused, except ``skipped`` ones (their device may exist now). With
    several processes each runs its shard and process 0 writes the merged tables.
    """
    suite, cases = plan(suite_path, device, filters)
    if num_processes > 1:
        from imgx.distributed import init

        init()
    out = prepare_out(Path(out) if out else default_out(suite.name), suite)
    ctx = RunContext(out=out, quiet=quiet, process_index=process_index, num_processes=num_processes)
    argv = argv if argv is not None else sys.argv
    started = _now()
    mine = order_for_reuse(shard(cases, process_index, num_processes))
    ran = reused = 0
    lock_dir = out / "locks" if num_processes > 1 else out
    lock_dir.mkdir(exist_ok=True)
    with RunLock(lock_dir) if num_processes == 1 else RunLock(_rank_lock(lock_dir, process_index)):
        if process_index == 0:
            write_manifest(out, suite, argv, started, None, {"planned": len(cases)})
        ledger = read_ledger(out)
        ctx.plan = pending(mine, ledger)
        bar = ctx.progress(total=len(mine), desc=suite.name, unit="case")
        for case in mine:
            bar.set_postfix_str(case.id[:60])
            record, fresh = execute(case, ctx, ledger)
            ran, reused = ran + fresh, reused + (not fresh)
            bar.update(1)
            if on_case:
                on_case(case, record)
        bar.close()
    if num_processes > 1:
        from imgx.distributed import barrier

        barrier()
    ledger = read_ledger(out)
    records = [ledger[c.key] for c in cases if c.key in ledger]
    for case in cases:  # gates are not part of the key: judge reused cases by the suite as it is now
        if case.key in ledger:
            ledger[case.key]["gates"] = evaluate_gates(case, ledger[case.key]["status"], ledger[case.key]["rows"])
    summary = RunSummary(out=out, records=records, ran=ran, reused=reused)
    if process_index == 0:
        finish_run(summary, suite, argv, started, {"planned": len(cases), "num_processes": num_processes},
                   report=report)
    return summary


def finish_run(summary: RunSummary, suite, argv: list[str], started: str, extra: dict[str, Any], *, report: bool,
               machine: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the tables, the final manifest and (``report``) ``report.html`` of a run; returns the manifest."""
    write_tables(summary.out, summary.records)
    manifest = write_manifest(summary.out, suite, argv, started, _now(),
                              {**extra, "ran": summary.ran, "reused": summary.reused, "counts": summary.counts(),
                               "records": summary.records}, machine)
    if report:
        _write_report(summary.out)
    return manifest


def _rank_lock(lock_dir: Path, index: int) -> Path:
    path = lock_dir / f"rank{index}"
    path.mkdir(exist_ok=True)
    return path


def _write_report(out: Path) -> None:
    try:
        from imgx.report import write_report

        write_report(out)
    except Exception as exc:  # noqa: BLE001 - results are on disk already; the report can be re-rendered
        log.error("could not write the report (results are safe; re-render with 'imgx report %s'): %s: %s",
                  out, type(exc).__name__, exc)
