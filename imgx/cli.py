"""``imgx run | validate | list | report | compare | baseline | score | ab | site``.

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

    ab = sub.add_parser("ab", help="time two git revisions of your repository interleaved on this machine "
                                   "(asv continuous): BASE_REF [CANDIDATE_REF] SUITE",
                        usage="imgx ab BASE_REF [CANDIDATE_REF] SUITE [-k FILTER] [--rounds N] [--calls N] [--out DIR]")
    ab.add_argument("refs", nargs="+", metavar="BASE_REF [CANDIDATE_REF] SUITE",
                    help="base revision, candidate revision (default: the working tree) and the suite file")
    ab.add_argument("-k", dest="filters", action="append", metavar="FILTER", help="as for 'imgx run' (repeatable)")
    ab.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    ab.add_argument("--rounds", type=int, default=10, help="paired rounds per case (default 10)")
    ab.add_argument("--calls", type=int, default=5, help="timed calls per side per round (default 5)")
    ab.add_argument("--out", help="folder for summary.md, comparison.html, ab.json and both run directories "
                                  "(default a new temporary folder)")
    ab.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    site = sub.add_parser("site", help="a static site from many run directories: runs, trends, hardware matrix")
    site.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories or folders of them")
    site.add_argument("--out", default="site", help="folder to write the site into (default ./site)")
    site.add_argument("--reference", help="machine (a part of its name) the hardware matrix's speed-ups refer to")

    base = sub.add_parser("baseline", help="write a baseline JSON file from a run directory")
    base.add_argument("run_dir")
    base.add_argument("--out", required=True, help="baseline JSON file to write")

    sc = sub.add_parser("score", help="score images made elsewhere into a run directory (task: score)",
                        description="Score a folder of images made elsewhere. Targets and inputs are matched to the "
                                    "outputs by file name without the suffix.")
    sc.add_argument("outputs", metavar="OUTPUTS", help="folder of the images to score")
    sc.add_argument("--target", metavar="DIR", help="folder of what each output should be (mse, psnr, ssim, target_*)")
    sc.add_argument("--input", metavar="DIR",
                    help="folder of what the model was given (input_ssim, identity reference rows)")
    sc.add_argument("--reference", metavar="DIR", help="folder of real images for fid/kid (any count)")
    sc.add_argument("--prompts", metavar="CSV", help="CSV with columns file,prompt (clip_score, prompt_accuracy)")
    sc.add_argument("--metrics", nargs="+", metavar="METRIC",
                    help="metrics, space or comma separated (default: what the given folders allow)")
    sc.add_argument("--features", metavar="NAME",
                    help="FID/KID feature extractor (default inception-v3; see imgx list)")
    sc.add_argument("--clip-model", metavar="NAME", help="CLIP model (hub id or local folder) for the CLIP metrics")
    sc.add_argument("--image-size", metavar="PX", type=int,
                    help="square size of FID/KID and CLIP images (default the outputs' smaller side, at most 299)")
    sc.add_argument("--id", metavar="ID", dest="case_id",
                    help="case id (default the outputs folder's name; runs compare by id)")
    sc.add_argument("--seed", type=int, default=0, help="bootstrap and reference-split seed (default 0)")
    sc.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    sc.add_argument("--out", help="run directory (default reports/score/<timestamp>); reusing one resumes")
    sc.add_argument("--quiet", "-q", action="store_true", help="no progress bars or per-metric table")
    sc.add_argument("--no-report", action="store_true", help="skip writing report.html")
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
            if e.meta.get("plugin"):
                extra = f" [plugin: {e.meta['plugin']}; task and options known once imported]"
            elif "task" in e.meta:
                extra = f" [task: {e.meta['task']}]"
            elif "tasks" in e.meta:
                extra = f" [tasks: {', '.join(sorted(e.meta['tasks']))}]"
            if e.meta.get("options"):
                extra += f" [options: {', '.join(sorted(e.meta['options']))}]"
            print(f"  {e.name:<30} {e.help}{extra}")
        if reg is MODELS:
            print(f"  {'pkg.module:attr':<30} any importable model of your own (imported by imgx run, never by "
                  "validate); other model: keys are its keyword arguments")
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


def _cmd_score(args) -> int:
    from imgx.console import print_results
    from imgx.runner import default_out
    from imgx.scoring import check_suite, run_score, score_suite

    metrics = [m for part in args.metrics or [] for m in part.split(",") if m]
    folders = {k: getattr(args, k) for k in ("outputs", "target", "input", "reference", "prompts")}
    suite = score_suite(folders, metrics, features=args.features, clip_model=args.clip_model,
                        image_size=args.image_size, seed=args.seed, device=args.device, case_id=args.case_id)
    names = {"outputs": "OUTPUTS", "metrics": "--metrics", "features": "--features", "clip_model": "--clip-model",
             **{k: f"--{k}" for k in ("target", "input", "reference", "prompts", "id", "device")},
             "data.image_size": "--image-size"}
    check_suite(suite, names)
    summary = run_score(suite, args.out or default_out("score"), quiet=args.quiet, report=not args.no_report,
                        argv=["imgx", *sys.argv[1:]])
    if not args.quiet:
        print_results(summary)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.counts().items()))
    print(f"imgx: {summary.out}: {counts}; rerun with: imgx run {summary.out / 'score.yaml'} --out {summary.out}")
    for line in summary.failed_cases:
        print(f"  FAILED {line}")
    return summary.exit_code


def _cmd_ab(args) -> int:
    from imgx.ab import AbError, ab_command

    if len(args.refs) not in (2, 3):
        raise AbError(f"imgx ab takes BASE_REF [CANDIDATE_REF] SUITE, got {len(args.refs)} argument(s): "
                      f"{' '.join(args.refs)}")
    *refs, suite = args.refs
    return ab_command(refs[0], refs[1] if len(refs) > 1 else None, suite, filters=args.filters, device=args.device,
                      rounds=args.rounds, calls=args.calls, out=args.out, quiet=args.quiet)


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
               "compare": _cmd_compare, "baseline": _cmd_baseline, "score": _cmd_score, "ab": _cmd_ab,
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
