"""``imgx run | validate | list | report | compare | baseline``.

Exit codes: 0 all good; 1 a gate failed, a case failed or a regression was found; 2 bad input.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from imgx import __version__
from imgx.errors import ImgxError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="imgx", description="Benchmark and evaluate image-to-image models.")
    p.add_argument("--version", action="version", version=f"imgx {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run (or resume) a suite into a run directory")
    run.add_argument("suite", help="suite YAML file")
    run.add_argument("--out", help="run directory (default reports/<suite>/<timestamp>); reusing one resumes")
    run.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                     help="run only the cases on this device (default: all the suite declares)")
    run.add_argument("-k", dest="filters", action="append", metavar="FILTER",
                     help="run only cases whose base id contains FILTER, or whose whole id or a sweep token (seed=1) is"
                          " FILTER (repeatable: any matches); none selected is exit 2")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bars or per-case lines")
    run.add_argument("--no-report", action="store_true", help="skip writing report.html")

    val = sub.add_parser("validate", help="check suite files without running anything")
    val.add_argument("suites", nargs="+", help="suite YAML files")
    val.add_argument("--list-cases", action="store_true", help="print each expanded case id and key")
    val.add_argument("--strict", action="store_true",
                     help="treat warnings (weights not in the cache while the hub cannot be reached) as errors")

    sub.add_parser("list", help="list tasks, models, data sets, metrics, schedulers, feature extractors, devices")

    rep = sub.add_parser("report", help="(re-)render report.html for a run directory")
    rep.add_argument("run_dir")
    rep.add_argument("--out", help="where to write the HTML (default RUN_DIR/report.html)")

    cmp_ = sub.add_parser("compare", help="compare a candidate run with a baseline run or baseline file")
    cmp_.add_argument("baseline", help="baseline run directory or baseline JSON file")
    cmp_.add_argument("candidate", help="candidate run directory")
    cmp_.add_argument("--out", help="folder for comparison.html and summary.md (default CANDIDATE/compare)")
    cmp_.add_argument("--latency", action="store_true", help="compare latency even across different machines")

    site = sub.add_parser("site", help="a static site from many run directories: runs, trends, hardware matrix")
    site.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories or folders of them")
    site.add_argument("--out", default="site", help="folder to write the site into (default ./site)")
    site.add_argument("--reference", help="machine (a part of its name) the hardware matrix's speed-ups refer to")

    base = sub.add_parser("baseline", help="write a baseline JSON file from a run directory")
    base.add_argument("run_dir")
    base.add_argument("--out", required=True, help="baseline JSON file to write")
    return p


def _cmd_run(args) -> int:
    from imgx.console import CaseLinePrinter, print_results
    from imgx.distributed import process_info
    from imgx.runner import run_suite

    index, count = process_info()
    if index == 0:  # absent weights are not warned about here: run_suite refuses them before the first case
        from imgx.suite import load_suite
        from imgx.suite.lint import suite_warnings

        for line in suite_warnings(load_suite(args.suite)):
            print(f"imgx: warning: {line}", file=sys.stderr)
    summary = run_suite(args.suite, args.out, device=args.device, filters=args.filters, quiet=args.quiet,
                        argv=["imgx", *sys.argv[1:]], process_index=index, num_processes=count,
                        report=not args.no_report, on_case=CaseLinePrinter())
    if index != 0:
        return summary.exit_code
    if not args.quiet:
        print_results(summary)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.counts().items())) or "no cases"
    where = f" in {summary.num_processes} processes" if summary.num_processes > 1 else ""
    print(f"imgx: {summary.out}: {counts} (ran {summary.ran}, reused {summary.reused}{where})")
    if summary.aborted:
        print(f"  STOPPED EARLY: {summary.aborted}; re-run with the same --out to resume")
    if not args.quiet:  # --quiet: the verdict line and, on failure, its reasons
        for r in summary.records:
            if r["status"] == "skipped":
                print(f"  skipped {r['case_id']}: {r['detail']}")
    for line in summary.failed_cases:
        print(f"  FAILED {line}")
    for line in summary.gate_failures:
        print(f"  GATE FAILED {line}")
    report = summary.out / "report.html"
    if report.exists() and not args.no_report and not args.quiet:
        print(f"  report: {report}")
    return summary.exit_code


def _cmd_validate(args) -> int:
    from imgx.errors import SuiteError
    from imgx.suite import expand, load_suite

    problems: list[str] = []
    for path in args.suites:
        try:
            suite = load_suite(path)
        except SuiteError as exc:
            problems.extend(exc.problems())
            continue
        cases = expand(suite)
        warnings = _suite_warnings(suite)
        if args.strict and warnings:
            problems.extend(warnings)
            continue
        for line in warnings:
            print(f"imgx: warning: {line}", file=sys.stderr)
        note = f", {len(warnings)} warning(s)" if warnings else ""
        print(f"{path}: ok ({len(suite.cases)} case entries, {len(cases)} cases{note})")
        if args.list_cases:
            for c in cases:
                print(f"  {c.key}  {c.id}")
    if problems:
        raise _Many(problems)
    return 0


def _suite_warnings(suite) -> list[str]:
    """Every warning of a valid suite: absent offline weights (from loading) and questionable settings (lint)."""
    from imgx.suite.lint import suite_warnings

    loaded = (w for ws in suite.warnings.values() for w in ws)
    return list(dict.fromkeys([*loaded, *suite_warnings(suite)]))


def _cmd_list(_args) -> int:
    from imgx.data import DATASETS
    from imgx.metrics import FEATURE_EXTRACTORS, METRICS
    from imgx.models import MODELS, SCHEDULERS
    from imgx.tasks import TASKS

    for title, reg in (("tasks", TASKS), ("models", MODELS), ("data sets", DATASETS), ("metrics", METRICS),
                       ("schedulers", SCHEDULERS), ("feature extractors", FEATURE_EXTRACTORS)):
        print(f"{title}:")
        for e in reg.entries():
            extra = ""
            if "task" in e.meta:
                extra = f" [task: {e.meta['task']}]"
            elif "tasks" in e.meta:
                extra = f" [tasks: {', '.join(sorted(e.meta['tasks']))}]"
            if e.meta.get("options"):
                extra += f" [options: {', '.join(sorted(e.meta['options']))}]"
            print(f"  {e.name:<30} {e.help}{extra}")
    print("devices:")
    print("  cpu                            always available")
    print("  cuda, cuda:N                   NVIDIA GPUs; cases are skipped with the reason where CUDA is absent")
    return 0


def _cmd_report(args) -> int:
    from imgx.report import write_report

    path = write_report(Path(args.run_dir), Path(args.out) if args.out else None)
    print(f"imgx: wrote {path}")
    return 0


def _cmd_compare(args) -> int:
    """``imgx compare BASELINE CANDIDATE [--out DIR] [--latency]``: verdicts from compare, pages from report."""
    from imgx.compare import compare_runs
    from imgx.errors import RunDirError
    from imgx.report.compare_report import write_comparison
    from imgx.results import atomic_write_json

    candidate = Path(args.candidate)
    if not candidate.is_dir():
        raise RunDirError(f"{candidate}: the candidate must be a run directory")
    comp = compare_runs(args.baseline, candidate, latency=args.latency)
    out_dir = Path(args.out) if args.out else candidate / "compare"
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "comparison.json", comp.to_dict())
    baseline_dir = Path(args.baseline) if Path(args.baseline).is_dir() else None
    _, md = write_comparison(comp, out_dir, baseline_dir, candidate)
    summary = md.read_text(encoding="utf-8")
    print(summary, end="" if summary.endswith("\n") else "\n")
    return comp.exit_code


def _cmd_site(args) -> int:
    from imgx.site import build_site

    result = build_site(args.run_dirs, Path(args.out), reference=args.reference)
    for note in result["notes"]:
        print(f"imgx: note: {note}")
    print(f"imgx: wrote {result['index']} ({result['runs']} runs, {result['read']} read, "
          f"{result['runs'] - result['read']} from the cache; {result['steps']} steps detected)")
    return 0


def _cmd_baseline(args) -> int:
    from imgx.compare import baseline_command

    return baseline_command(args.run_dir, args.out)


class _Many(ImgxError):
    def __init__(self, problems):
        self._problems = problems
        super().__init__("\n".join(problems))

    def problems(self):
        return self._problems


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="imgx: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "urllib3", "filelock", "diffusers", "transformers", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # huggingface_hub prints through its own handler and would print every warning again through ours
    logging.getLogger("huggingface_hub").propagate = False
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for bad flags, 0 for --help
        return int(exc.code or 0)
    if getattr(args, "quiet", False):
        logging.getLogger("imgx").setLevel(logging.WARNING)
    handler = {"run": _cmd_run, "validate": _cmd_validate, "list": _cmd_list, "report": _cmd_report,
               "compare": _cmd_compare, "baseline": _cmd_baseline,
               "site": _cmd_site}[args.command]
    try:
        return handler(args)
    except ImgxError as exc:
        for line in exc.problems():
            print(f"imgx: error: {line}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permissions: finished cases are safe in the ledger (atomic writes)
        if isinstance(exc, BrokenPipeError):  # e.g. `imgx list | head`
            sys.stderr.close()
            return 0
        print(f"imgx: error: {exc.strerror or exc} ({exc.filename or 'write'}); finished cases are kept, fix the "
              "problem and re-run with the same --out to resume", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("imgx: interrupted; finished cases are in the ledger, re-run with the same --out to resume",
              file=sys.stderr)
        return 130
