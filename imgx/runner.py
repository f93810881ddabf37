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
from imgx.errors import ImgxError, RunDirError, SuiteError, TrainingDiverged
from imgx.results import (
    FORMAT,
    CaseResult,
    atomic_write_json,
    case_record,
    ok_values,
    read_ledger,
    read_manifest,
    split_superseded,
    superseded_list,
    write_case,
    write_tables,
)
from imgx.suite import Case, expand, load_suite
from imgx.suite.expand import _fmt as _fmt_value
from imgx.suite.preflight import parse_gate

log = logging.getLogger("imgx")
_OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le, ">": operator.gt,
                                                   "<": operator.lt}


@dataclass
class RunContext:
    """What a task may use besides its case: where to write, how to report progress, shared resources.

    ``resources`` lives for the whole process, so a task can keep a loaded pipeline or a cached
    feature extractor across the cases that share it. ``plan`` lists the cases this process will still run, in
    order, so that a task can compute later cases' outputs ahead (batched sweeps, :mod:`imgx.tasks.batched_sweep`);
    ``cases`` lists every case of the run, so that it can tell when it computes only part of a sweep.
    """

    out: Path
    quiet: bool = False
    cache_dir: Path = field(default_factory=default_cache_dir)
    resources: dict[str, Any] = field(default_factory=dict)
    process_index: int = 0
    num_processes: int = 1
    plan: list[Case] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)  # every case of the run (all processes, ledger included)

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
    """Check the case's gates against its own metric rows, as in a ledger record.

    A relative gate (``"<= 0.5 * untrained"``) compares with the same metric's reference row of the same case; its
    record adds ``reference``, ``scale`` and ``reference_value``, and ``bound`` is the scaled reference value.
    """
    gates = []
    values = ok_values(rows)
    for metric, expr in case.spec.gates.items():
        gate = parse_gate(expr)
        value = values.get(metric)
        bound = gate.bound
        extra: dict[str, Any] = {}
        if gate.reference is not None:
            ref = next((r["value"] for r in rows if r["metric"] == metric and r["reference"] == gate.reference
                        and r["status"] == "ok"), None)
            bound = None if ref is None else gate.scale * ref
            extra = {"reference": gate.reference, "scale": gate.scale, "reference_value": ref}
        if status != "ok":
            passed, detail = None, f"not evaluated: case {status}"
        elif value is None:
            passed, detail = False, f"{metric} has no ok value in this case"
        elif bound is None:
            passed, detail = False, f"{metric}: reference row {gate.reference!r} has no ok value in this case"
        else:
            passed = _OPS[gate.op](value, bound)
            detail = f"{metric} = {value:.6g}, required {gate.op} {gate.text}" if gate.reference is None else (
                f"{metric} = {value:.6g}, required {gate.describe()} "
                f"({'' if gate.scale == 1 else f'{gate.scale:g} * '}{gate.reference} {extra['reference_value']:.6g}"
                f"{f' = {bound:.6g}' if gate.scale != 1 else ''})")
        gates.append({"metric": metric, "op": gate.op, "bound": bound, "value": value, "passed": passed,
                      "detail": detail, **extra})
    return gates


@dataclass
class RunSummary:
    """What a run did: the cases it ran or reused, and the exit code it implies."""

    out: Path
    records: list[dict[str, Any]]
    ran: int = 0
    reused: int = 0
    num_processes: int = 1
    aborted: str | None = None  # why the run stopped before every case was done (exit 2 or 1 follows)
    unfinished: list[str] = field(default_factory=list)  # case ids left for a resume
    reused_ids: list[str] = field(default_factory=list)  # cases taken from the ledger of an earlier run

    @property
    def gate_failures(self) -> list[str]:
        return [f"{r['case_id']}: {g['detail']}" for r in self.records for g in r["gates"] if g["passed"] is False]

    @property
    def failed_cases(self) -> list[str]:
        return [f"{r['case_id']}: {r['detail']}" for r in self.records if r["status"] == "failed"]

    @property
    def exit_code(self) -> int:
        return 1 if self.gate_failures or self.failed_cases or self.unfinished else 0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out


class RunLock:
    """An exclusive lock on a run directory (``.lock``); the OS releases it when the process dies."""

    def __init__(self, out: Path, wait: float = 0.0):
        self.path = out / ".lock"
        self.fh = None
        self.wait = wait  # a rank lock may be probed for a moment by process 0: retry that long

    def __enter__(self):
        self.fh = open(self.path, "a+")  # noqa: SIM115 - held for the lifetime of the run
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
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
    """Cases that any of ``filters`` selects (case-insensitive); all cases without filters.

    A filter selects a case when it is part of the case's base id (``col`` selects ``colorizer[seed=1]``),
    the whole case id, or a whole sweep token of it: ``seed=1`` or the axis name ``seed``. So ``-k ed`` does
    not select ``col[seed=1]`` through ``seed``, and ``-k seed=1`` does not select ``seed=10``.
    """
    if not filters:
        return cases
    needles = [f.lower() for f in filters]
    return [c for c in cases if any(_selects(n, c) for n in needles)]


def _selects(needle: str, case: Case) -> bool:
    tokens = {case.id.lower()}
    for name, value in case.params.items():
        tokens |= {name.lower(), f"{name}={_fmt_value(value)}".lower()}
    return needle in case.base_id.lower() or needle in tokens


def _nothing_selected(filters: list[str], cases: list[Case], device: str) -> ImgxError:
    shown = [c.id for c in cases[:30]] + ([f"... and {len(cases) - 30} more"] if len(cases) > 30 else [])
    where = f" on device {device}" if device != "all" else ""
    return ImgxError(f"-k {' -k '.join(filters)} selects no case{where} (a filter matches part of a base id, "
                     f"the whole id, or a whole sweep token like seed=1); the cases are: {', '.join(shown) or 'none'}")


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


def rejudge(case: Case, record: dict[str, Any]) -> None:
    """Recompute, in place, the status ``max_invalid`` decides for a reused record (from its invalid counts).

    Only a status that the invalid-output verdict of :mod:`imgx.tasks.diffusion_common` set is changed; its text
    in ``detail`` is replaced by the verdict under the case's ``max_invalid`` now.
    """
    info = record.get("info") or {}
    reasons, total = info.get("invalid_reasons"), info.get("outputs")
    if not isinstance(reasons, dict) or not sum(reasons.values()) or not isinstance(total, int):
        return
    found = re.search(r"max_invalid (?:is )?(\d+)", record.get("detail") or "")
    if not found:
        return
    from imgx.tasks.diffusion_common import invalid_verdict

    old = invalid_verdict(reasons, total, int(found.group(1)))
    new = invalid_verdict(reasons, total, case.spec.max_invalid)
    if old != new and old[0] == record["status"] and old[1] in record["detail"]:
        record["status"], record["detail"] = new[0], record["detail"].replace(old[1], new[1], 1)


def execute(case: Case, ctx: RunContext, ledger: dict[str, dict[str, Any]], *, fresh: bool = False
            ) -> tuple[dict[str, Any], bool]:
    """Reuse the case's ledger record (unless ``fresh`` or it was skipped) or run it and write it to the ledger.

    Returns the record and whether the case ran now. Shared by ``run_suite`` and the pytest plugin.
    """
    previous = ledger.get(case.key)
    if not fresh and previous is not None and previous["status"] != "skipped":
        # Gates, tolerances and max_invalid are not part of the key: judge a reused case by the suite as it is
        # now, and write the new verdict to the ledger so that reports and comparisons read it.
        before = (previous["status"], previous["detail"], previous["gates"], previous.get("regression"))
        rejudge(case, previous)
        previous["gates"] = evaluate_gates(case, previous["status"], previous["rows"])
        previous["regression"] = dict(case.spec.regression)
        if (previous["status"], previous["detail"], previous["gates"], previous["regression"]) != before:
            write_case(ctx.out, previous)
        return previous, False
    log.info("running %s", case.id)
    t0 = time.time()
    result = run_case(case, ctx)
    record = case_record(case, result, t0, time.time(), [])
    record["process_index"] = ctx.process_index  # which process of a multi-process run computed it
    record["gates"] = evaluate_gates(case, record["status"], record["rows"])
    write_case(ctx.out, record)
    ledger[case.key] = record
    return record, True


def pending(cases: list[Case], ledger: dict[str, dict[str, Any]]) -> list[Case]:
    """The cases :func:`execute` will run rather than reuse from the ledger (``RunContext.plan``)."""
    return [c for c in cases if c.key not in ledger or ledger[c.key]["status"] == "skipped"]


def plan(suite_path: str | Path, device: str = "all", filters: list[str] | None = None) -> tuple[Any, list[Case]]:
    """Load and validate a suite, expand it, and keep the cases selected by ``device`` and ``filters``."""
    from imgx.suite.load import user_model_problems

    suite = load_suite(suite_path)
    imported = user_model_problems(suite)  # run imports the user's models (validate never does): refuse bad ones now
    if imported:
        raise SuiteError(imported)
    cases = expand(suite)
    if device != "all":
        cases = [c for c in cases if c.device == device or c.device.startswith(device + ":")]
    selected = select(cases, filters)
    if filters and not selected:  # an empty run would pass in CI: refuse it
        raise _nothing_selected(filters, cases, device)
    # Weights that cannot be had now would stop the run part-way: refuse it before the first case.
    absent = [w for c in selected if c.base_id in suite.warnings and not _skipped_here(c)
              for w in suite.warnings[c.base_id]]
    if absent:
        raise SuiteError(list(dict.fromkeys(absent)))
    return suite, selected


def _skipped_here(case: Case) -> bool:
    """A case on a device this machine lacks is skipped, not run: its weights are not needed here."""
    from imgx.env import device_unavailable_reason

    return device_unavailable_reason(case.device) is not None


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
        "suite_git_commit": git_commit(str(Path(suite.path).resolve().parent)),  # the user's project, if in git
        "suite": suite.name,
        "suite_path": str(suite.path),
        "suite_sha256": suite.sha256,
        "description": suite.spec.description,
        "command": argv,
        "seed": suite.spec.seed,
        "started": started,
        "ended": ended,
        "environment": fingerprint(use_cuda=uses_cuda or None),
        # every key the suite produces now, selected or not: what makes a ledger record current (load_run)
        "case_keys": extra["case_keys"] if "case_keys" in extra else [c.key for c in expand(suite)],
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
    from imgx import distributed

    since = distributed.process_started()
    suite, cases = plan(suite_path, device, filters)
    if num_processes > 1:
        distributed.init()
    out = prepare_out(Path(out) if out else default_out(suite.name), suite)
    ctx = RunContext(out=out, quiet=quiet, process_index=process_index, num_processes=num_processes)
    argv = argv if argv is not None else sys.argv
    started = _now()
    mine = order_for_reuse(shard(cases, process_index, num_processes))
    ran = reused = 0
    reused_ids: list[str] = []
    aborted: ImgxError | None = None
    many = num_processes > 1
    lock = RunLock(distributed.rank_dir(out, process_index), wait=5.0) if many else RunLock(out)
    with lock:
        if many:
            distributed.mark_started(out, process_index)
        if process_index == 0:
            write_manifest(out, suite, argv, started, None, {"planned": len(cases), "num_processes": num_processes})
        ledger = read_ledger(out)
        ctx.plan = pending(mine, ledger)
        ctx.cases = list(cases)
        from imgx.progress import SuiteBar, logs_through_bars

        bar = SuiteBar(ctx, mine, {c.key for c in mine if ledger.get(c.key, {}).get("status", "skipped") != "skipped"},
                       suite.name)
        stopped: str | None = "interrupted"  # Ctrl-C, a storage error: what the done marker says unless we finish
        try:
            with logs_through_bars(not bar.bar.disable):
                for case in mine:
                    bar.start(case)
                    record, fresh = execute(case, ctx, ledger)
                    ran, reused = ran + fresh, reused + (not fresh)
                    if not fresh:
                        reused_ids.append(case.id)
                    bar.finish(case, fresh)
                    if on_case:
                        on_case(case, record)
            stopped = None
        except ImgxError as exc:  # bad input found part-way: table what finished, then exit 2
            aborted, stopped = exc, _reason(exc)
        finally:
            bar.close()
            if many:
                distributed.mark_done(out, process_index, ran, reused, stopped)
    outcome = distributed.ShardsOutcome()
    if many and process_index == 0 and aborted is None:
        others = {i: shard(cases, i, num_processes) for i in range(1, num_processes)}
        outcome = distributed.wait_for_shards(out, others, since, log)
    ledger = read_ledger(out)
    records = [ledger[c.key] for c in cases if c.key in ledger]
    for case in cases:  # gates and max_invalid are not part of the key: judge reused cases by the suite now
        if case.key in ledger:
            rejudge(case, ledger[case.key])
            ledger[case.key]["gates"] = evaluate_gates(case, ledger[case.key]["status"], ledger[case.key]["rows"])
    summary = RunSummary(out=out, records=records, ran=ran + outcome.ran, reused=reused + outcome.reused,
                         num_processes=num_processes, unfinished=outcome.unfinished,
                         aborted=_reason(aborted) if aborted else "; ".join(outcome.stopped) or None,
                         reused_ids=reused_ids)
    if aborted is not None:
        summary.unfinished = [c.id for c in cases if c.key not in ledger]
    if process_index == 0:
        extra: dict[str, Any] = {"planned": len(cases), "num_processes": num_processes}
        if summary.aborted:
            extra.update(aborted=summary.aborted, unfinished=summary.unfinished)
        finish_run(summary, suite, argv, started, extra, report=report)
    if aborted is not None:
        where = f"tabled in {out} (the report says why)" if process_index == 0 else f"in the ledger of {out}"
        log.error("stopped early: %d finished case(s) %s; fix the problem and re-run with the same --out to "
                  "resume", len(records), where)
        raise aborted
    return summary


def _reason(exc: ImgxError) -> str:
    return "; ".join(exc.problems())


def finish_run(summary: RunSummary, suite, argv: list[str], started: str, extra: dict[str, Any], *, report: bool,
               machine: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the tables, the final manifest and (``report``) ``report.html`` of a run; returns the manifest."""
    write_tables(summary.out, summary.records)
    keys = [c.key for c in expand(suite)]
    superseded = split_superseded({"case_keys": keys}, list(read_ledger(summary.out).values()))[1]
    if superseded:
        log.warning("%d superseded record(s) kept in %s/cases but not read (their case's configuration or inputs "
                    "changed, or the case left the suite): %s", len(superseded), summary.out,
                    ", ".join(sorted(f"{r['case_id']} ({r['key']})" for r in superseded)))
    manifest = write_manifest(summary.out, suite, argv, started, _now(),
                              {**extra, "ran": summary.ran, "reused": summary.reused, "counts": summary.counts(),
                               "reused_cases": summary.reused_ids, "case_keys": keys,
                               "superseded": superseded_list(superseded), "records": summary.records}, machine)
    if report:
        _write_report(summary.out)
    return manifest


def _write_report(out: Path) -> None:
    try:
        from imgx.report import write_report

        write_report(out)
    except Exception as exc:  # noqa: BLE001 - results are on disk already; the report can be re-rendered
        log.error("could not write the report (results are safe; re-render with 'imgx report %s'): %s: %s",
                  out, type(exc).__name__, exc)
