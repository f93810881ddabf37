"""pytest plugin: a suite file becomes a test module, each expanded case a test whose gates are assertions.

``pytest suites/quickstart.yaml`` collects every case of the suite (``quickstart.yaml::colorizer``,
``quickstart.yaml::edit[image_guidance_scale=1.5,...]``), runs each through the same runner as ``imgx run``
(ledger, tables, manifest and report in one run directory), and fails a case on a failed gate, a failed case
or, with ``--imgx-baseline FILE``, a regression against the baseline. Only YAML files with a top-level
``suite:`` key are collected, and only when named on the command line or matched by the ``imgx_suites`` ini
option, so other YAML in a repository is never touched.

This module is loaded by every pytest run (entry point ``pytest11``): it imports only pytest and the
standard library at import time; imgx's runner (and torch) load when a suite is collected or run.
"""

from __future__ import annotations

import contextlib
import fnmatch
import warnings
from pathlib import Path
from typing import Any

import pytest

SUITE_SUFFIXES = (".yaml", ".yml")
MAX_SNIFF_BYTES = 1_000_000
_MARKERS = {"slow": "slow: takes minutes", "gpu": "gpu: needs CUDA (skipped without it, with the reason)"}
_STATE = "_imgx_state"


class ImgxHookSpecs:
    """Hooks other plugins and conftest files may implement."""

    @pytest.hookspec
    def pytest_imgx_machine_info(self, config: pytest.Config, machine_info: dict[str, Any]) -> None:
        """Add to ``machine_info`` (update it in place), e.g. a CI runner label or a cloud instance type.

        It is recorded in the run's ``manifest.json`` under ``environment.machine``; baselines keep it, and a
        comparison whose machine info differs treats the machines as different (latency is not compared).
        """


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(ImgxHookSpecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("imgx", "imgx: run benchmark suites (YAML) as tests")
    group.addoption("--imgx-out", metavar="DIR", default=None,
                    help="run directory (default reports/<suite>/<timestamp>); reusing one resumes. With several "
                         "suites, one subfolder per suite.")
    group.addoption("--imgx-device", choices=("cpu", "cuda", "all"), default="all",
                    help="collect only the cases on this device (default: all the suite declares)")
    group.addoption("--imgx-baseline", metavar="FILE", default=None,
                    help="baseline JSON (or run directory) to check each case against for regressions")
    group.addoption("--imgx-update-baseline", action="store_true", default=False,
                    help="write the --imgx-baseline FILE from this run instead of comparing with it")
    group.addoption("--imgx-latency", action="store_true", default=False,
                    help="compare timing metrics with the baseline even when the machines differ")
    group.addoption("--imgx-ab", metavar="BASE_REF", default=None,
                    help="time each suite's selected cases from git revision BASE_REF and from the working tree, "
                         "interleaved on this machine ('imgx ab'); a case fails on a failed gate or a regression")
    group.addoption("--imgx-no-report", action="store_true", default=False, help="do not write report.html")
    parser.addini("imgx_suites", type="linelist", default=[],
                  help="glob patterns (relative to rootdir) of imgx suite files to collect without naming them")


def pytest_configure(config: pytest.Config) -> None:
    known = {line.split(":")[0].strip() for line in config.getini("markers")}
    for name, line in _MARKERS.items():
        if name not in known:
            config.addinivalue_line("markers", line)
    baseline = config.getoption("imgx_baseline", None)
    if config.getoption("imgx_update_baseline", False) and not baseline:
        raise pytest.UsageError("--imgx-update-baseline needs --imgx-baseline FILE (the file to write)")
    if baseline and not config.getoption("imgx_update_baseline") and not Path(baseline).exists():
        raise pytest.UsageError(f"--imgx-baseline {baseline}: no such file; create it with "
                                "--imgx-update-baseline or 'imgx baseline RUN_DIR --out FILE'")
    if config.getoption("imgx_ab", None) and baseline:
        raise pytest.UsageError("--imgx-ab compares two revisions and --imgx-baseline a run with a file: pick one")
    setattr(config, _STATE, _State(config))


# ------------------------------------------------------------------------------------------- collection
def _is_suite_file(path: Path) -> bool:
    """True for a YAML mapping with a top-level ``suite:`` key (a cheap sniff, ``safe_load`` only)."""
    import yaml

    try:
        if path.stat().st_size > MAX_SNIFF_BYTES:
            return False
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        # A broken file counts only if it says it is a suite, so that its errors get reported.
        return any(line.startswith("suite:") for line in text.splitlines())
    return isinstance(data, dict) and "suite" in data


def _matches_ini(config: pytest.Config, path: Path) -> bool:
    patterns = config.getini("imgx_suites")
    if not patterns:
        return False
    try:
        rel = path.relative_to(config.rootpath).as_posix()
    except ValueError:
        rel = path.as_posix()
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(path.name, p) for p in patterns)


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix not in SUITE_SUFFIXES:
        return None
    if not (parent.session.isinitpath(file_path) or _matches_ini(parent.config, file_path)):
        return None
    if not _is_suite_file(file_path):
        return None
    return SuiteFile.from_parent(parent, path=file_path)


class SuiteInvalid(Exception):
    """The suite file did not validate; carries one message per problem."""


class SuiteFile(pytest.File):
    """A suite YAML file; its children are the expanded cases."""

    def collect(self):
        from imgx.errors import ImgxError
        from imgx.runner import plan

        try:
            suite, cases = plan(self.path, self.config.getoption("imgx_device"))
        except ImgxError as exc:
            raise SuiteInvalid("\n".join(exc.problems())) from None
        for case in cases:
            item = CaseItem.from_parent(self, name=case.id, case=case, suite=suite)
            for mark in case.marks:
                item.add_marker(getattr(pytest.mark, mark))
            yield item

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SuiteInvalid):
            return f"invalid imgx suite {self.path}:\n{excinfo.value}"
        return super().repr_failure(excinfo, style)


@contextlib.contextmanager
def _case_warnings():
    """Warnings inside a case are reported (pytest's warnings summary), never raised.

    A project's ``filterwarnings = error`` is meant for its own tests; a library warning inside a case must not
    fail the case under pytest when ``imgx run`` would pass it, since both must give the same results.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        yield


class CaseFailure(Exception):
    """A case failed, missed a gate or regressed; the message names metric, value and bound."""


class CaseItem(pytest.Item):
    """One expanded case of a suite."""

    def __init__(self, *, case, suite, **kwargs):
        super().__init__(**kwargs)
        self.case = case
        self.suite = suite
        self.record: dict[str, Any] | None = None

    def runtest(self) -> None:
        from imgx.errors import ImgxError

        state: _State = getattr(self.config, _STATE)
        if state.ab_ref:
            return self._runtest_ab(state)
        run = state.run_for(self)
        try:
            with _case_warnings():
                record = run.run(self.case)
        except ImgxError as exc:  # bad input: `imgx run` would stop with exit code 2 and these lines
            raise CaseFailure("bad input (exit 2 under 'imgx run'): " + "\n".join(exc.problems())) from None
        self._record_properties(record, run)
        if record["status"] == "skipped":
            pytest.skip(f"{self.case.id}: {record['detail']}")
        problems = []
        if record["status"] == "failed":
            problems.append(f"case failed: {record['detail']}")
        problems += [f"gate failed: {g['detail']}" for g in record["gates"] if g["passed"] is False]
        if not problems and state.baseline is not None:
            with _case_warnings():
                problems += state.check_baseline(self, run, record)
        if problems:
            # The first problem is the line pytest's short summary shows.
            raise CaseFailure("\n".join(problems))

    def _runtest_ab(self, state: _State) -> None:
        """Under ``--imgx-ab``: the case as the working tree ran it beside BASE_REF (one ``imgx ab`` per suite)."""
        result = state.ab_result(self)
        record = next((r for r in result.candidate_records if r["case_id"] == self.case.id), None)
        if record is None:
            raise CaseFailure(f"{self.case.id}: not run by imgx ab (see {result.out})")
        self.user_properties.append(("imgx_ab", str(result.out)))
        if record["status"] == "skipped":
            pytest.skip(f"{self.case.id}: {record['detail']}")
        problems = [f"case failed: {record['detail']}"] if record["status"] == "failed" else []
        problems += [f"gate failed: {g['detail']}" for g in record["gates"] if g["passed"] is False]
        problems += [f"{r.short}\nregression: {r.case_id}: {r.detail}" for r in result.comparison.regressions
                     if r.case_id == self.case.id]
        if problems:
            raise CaseFailure("\n".join(problems))

    def _record_properties(self, record: dict[str, Any], run: SuiteRun) -> None:
        """Metric values as ``user_properties`` (JUnit XML properties); a re-measured case replaces them."""
        self.record = record
        self.user_properties.clear()
        self.user_properties.append(("imgx_status", record["status"]))
        self.user_properties.append(("imgx_run_dir", str(run.out)))
        self.user_properties.append(("imgx_key", record["key"]))
        for row in record["rows"]:
            name = row["metric"] + (f"@{row['reference']}" if row.get("reference") else "")
            self.user_properties.append((name, row["value"] if row["status"] == "ok" else row["status"]))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CaseFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"imgx case {self.case.id} ({self.case.task}, {self.case.device})"


# ---------------------------------------------------------------------------------------------- running
class SuiteRun:
    """One suite's run directory during a session: started by its first case, completed at session end."""

    def __init__(self, state: _State, suite, out: Path):
        self.state, self.suite, self.out = state, suite, out
        self.planned: list = []  # the selected cases, in collection order
        self.records: dict[str, dict[str, Any]] = {}
        self.ctx = None
        self.lock = None
        self.ledger: dict[str, dict[str, Any]] = {}
        self.started = ""
        self.ran = self.reused = 0
        self.reused_ids: list[str] = []
        # with --imgx-baseline: each case's final comparison rows, for comparison.json/html and summary.md
        self.comparison_rows: list = []
        self.comparison_warnings: list[str] = []
        self.comparison_env: tuple[list[str], bool] = ([], True)
        self.environment: dict[str, Any] = {}

    def start(self) -> None:
        from imgx.results import read_ledger
        from imgx.runner import RunContext, RunLock, _now, pending, prepare_out, write_manifest

        self.out = prepare_out(self.out, self.suite)
        self.lock = RunLock(self.out)
        self.lock.__enter__()
        self.ctx = RunContext(out=self.out, quiet=True)
        self.started = _now()
        manifest = write_manifest(self.out, self.suite, self._argv, self.started, None,
                                  {"planned": len(self.planned), "runner": "pytest"}, self.state.machine_info())
        self.environment = manifest["environment"]
        self.ledger = read_ledger(self.out)
        self.ctx.plan = pending(self.planned, self.ledger)
        self.ctx.cases = list(self.planned)

    @property
    def _argv(self) -> list[str]:
        return ["pytest", *self.state.config.invocation_params.args]

    def run(self, case, *, fresh: bool = False) -> dict[str, Any]:
        """Run ``case`` (or reuse its ledger record unless ``fresh``) and write it to the ledger."""
        from imgx.runner import execute

        if self.ctx is None:
            self.start()
        record, ran = execute(case, self.ctx, self.ledger, fresh=fresh)
        if case.key not in self.records:  # a re-measure is the same test: count each case once
            self.ran += ran
            self.reused += not ran
            if not ran:
                self.reused_ids.append(case.id)
        self.records[case.key] = record
        return record

    def finish(self, report: bool) -> None:
        """Write the tables, the final manifest and the report from the ledger records of this session."""
        from imgx.runner import RunSummary, finish_run

        try:
            if self.state.baseline is not None:
                self.write_comparison()
            records = [self.records[c.key] for c in self.planned if c.key in self.records]
            summary = RunSummary(out=self.out, records=records, ran=self.ran, reused=self.reused,
                                 reused_ids=self.reused_ids)
            manifest = finish_run(summary, self.suite, self._argv, self.started,
                                  {"planned": len(self.planned), "num_processes": 1, "runner": "pytest"},
                                  report=report, machine=self.state.machine_info())
            self.environment = manifest["environment"]
        finally:
            self.lock.__exit__(None, None, None)

    def write_comparison(self) -> None:
        """``comparison.json``, ``comparison.html`` and ``summary.md`` in the run directory, from the per-case checks.

        Written before the report, which shows the verdict. Baseline cases this session did not select are one line.
        """
        from imgx.compare import Comparison, not_run_line
        from imgx.report.compare_report import write_comparison
        from imgx.results import atomic_write_json

        base = self.state.baseline
        selected = {c.id for c in self.planned}
        not_run = [cid for cid in base.cases if cid not in selected]
        diffs, latency = self.comparison_env
        comp = Comparison(baseline_label=base.label, candidate_label=str(self.out), rows=list(self.comparison_rows),
                          warnings=list(self.comparison_warnings), environment_diffs=diffs, latency_compared=latency,
                          baseline_info=base.info, not_run=not_run,
                          candidate_info={"suite": self.suite.name, "suite_path": str(self.suite.path),
                                          "suite_sha256": self.suite.sha256, "started": self.started})
        if not_run:
            comp.warnings.append(not_run_line(not_run))
        atomic_write_json(self.out / "comparison.json", comp.to_dict())
        baseline_dir = Path(self.state.baseline_path) if Path(self.state.baseline_path).is_dir() else None
        html, md = write_comparison(comp, self.out, baseline_dir, self.out)
        verdict = f"{len(comp.regressions)} regression(s)" if comp.regressions else "no regression"
        if comp.inconclusive:
            verdict += f", {len(comp.inconclusive)} inconclusive (noisy machine)"
        self.state.notes.append(f"{self.suite.name}: baseline {base.label}: {verdict}; {html}, {md}")


class _State:
    """Session-wide plugin state: suite runs, the baseline, notes for the terminal summary."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.runs: dict[Path, SuiteRun] = {}
        self.notes: list[str] = []
        self.case_verdicts: dict[str, str] = {}  # case id -> worst baseline verdict (the end-of-session table)
        self._machine: dict[str, Any] | None = None
        self._baseline = None
        opt = config.getoption
        self.baseline_path = opt("imgx_baseline", None)
        self.update_baseline = opt("imgx_update_baseline", False)
        self.latency = opt("imgx_latency", False)
        self.ab_ref = opt("imgx_ab", None)
        self._ab: dict[Path, Any] = {}  # suite path -> imgx.ab.AbResult, or the CaseFailure that stopped it

    @property
    def baseline(self):
        """The baseline snapshot (per case, each carrying its seed group's spread), or None."""
        if self.baseline_path is None or self.update_baseline:
            return None
        if self._baseline is None:
            from imgx.compare import load_snapshot, with_group_spread

            self._baseline = with_group_spread(load_snapshot(self.baseline_path))
        return self._baseline

    def machine_info(self) -> dict[str, Any]:
        if self._machine is None:
            info: dict[str, Any] = {}
            self.config.hook.pytest_imgx_machine_info(config=self.config, machine_info=info)
            self._machine = info
        return self._machine

    def plan_runs(self, items: list[pytest.Item]) -> None:
        """Decide each selected suite's run directory once collection (and ``-k``/``-m`` selection) is final."""
        by_suite: dict[Path, list[CaseItem]] = {}
        for item in items:
            if isinstance(item, CaseItem):
                by_suite.setdefault(item.path, []).append(item)
        if not by_suite:  # an ordinary test session: import nothing of imgx
            return
        from imgx.runner import default_out

        root = self.config.getoption("imgx_out")
        names = [its[0].suite.name for its in by_suite.values()]
        for path, its in by_suite.items():
            suite = its[0].suite
            if root:
                out = Path(root) if len(by_suite) == 1 else Path(root) / (suite.name if names.count(suite.name) == 1
                                                                           else path.stem)
            else:
                out = default_out(suite.name)
            run = SuiteRun(self, suite, out)
            run.planned = [i.case for i in its]
            self.runs[path] = run
        if self.update_baseline and len(by_suite) > 1:
            raise pytest.UsageError("--imgx-update-baseline writes one file: run one suite at a time")

    def ab_result(self, item: CaseItem):
        """``imgx ab BASE_REF <working tree> SUITE -k <the selected cases>``, run once per suite file."""
        if item.path not in self._ab:
            from imgx.ab import run_ab
            from imgx.errors import ImgxError

            run = self.run_for(item)
            try:
                result = run_ab(self.ab_ref, None, item.path, filters=[c.id for c in run.planned],
                                out=run.out,
                                repo=self.config.rootpath, quiet=True)
                self.notes.append(f"{run.suite.name}: imgx ab {self.ab_ref} -> working tree: "
                                  f"{len(result.comparison.regressions)} regression(s); {result.out / 'summary.md'}")
            except ImgxError as exc:
                result = CaseFailure("imgx ab could not run (exit 2 under 'imgx ab'): " + "\n".join(exc.problems()))
            self._ab[item.path] = result
        result = self._ab[item.path]
        if isinstance(result, CaseFailure):
            raise result
        return result

    def run_for(self, item: CaseItem) -> SuiteRun:
        return self.runs[item.path]

    def check_baseline(self, item: CaseItem, run: SuiteRun, record: dict[str, Any]) -> list[str]:
        """Compare one case with the baseline; re-measure once before declaring a timing regression."""
        comp = self._compare(item, run, record)
        if comp is None:
            return []
        from imgx.compare import judge_remeasure

        timing = [r for r in comp.regressions if r.timing]
        if timing and len(timing) == len(comp.regressions):
            first = "; ".join(f"{r.metric} {r.change_pct:+.1f}%" for r in timing if r.change_pct is not None)
            first_values = {(r.metric, r.reference): r.candidate for r in timing}
            record = run.run(item.case, fresh=True)
            item._record_properties(record, run)
            comp = self._compare(item, run, record)
            for r in comp.rows:
                if r.timing and r.verdict == "regression":
                    judge_remeasure(r, first_values.get((r.metric, r.reference)))
                    r.detail += f" (re-measured once; first measurement: {first})"
        self.keep_comparison(item, comp)
        # The first line is what pytest's short summary shows: the change and its band, the metric named once.
        return [f"{r.short}\nregression: {r.case_id}: {r.detail}" for r in comp.regressions]

    def keep_comparison(self, item: CaseItem, comp) -> None:
        """Keep a case's final comparison rows for the session's comparison files and the end-of-session table."""
        from imgx.compare import VERDICTS

        run = self.run_for(item)
        run.comparison_rows = [r for r in run.comparison_rows if r.case_id != item.case.id] + list(comp.rows)
        run.comparison_warnings += [w for w in comp.warnings if w not in run.comparison_warnings]
        run.comparison_env = (comp.environment_diffs, comp.latency_compared)
        present = {r.verdict for r in comp.rows}
        worst = next((v for v in VERDICTS if v in present and v not in ("not-compared",)), "unchanged")
        self.case_verdicts[item.case.id] = worst

    def _compare(self, item: CaseItem, run: SuiteRun, record: dict[str, Any]):
        from imgx.compare import Snapshot, compare_snapshots, snapshot_from_records

        base = self.baseline
        entry = base.cases.get(item.case.id)
        if entry is None:
            item.user_properties.append(("imgx_baseline", "new case (not in the baseline)"))
            self.case_verdicts[item.case.id] = "new"
            return None
        b = Snapshot(base.label, base.info, base.environment, {entry.case_id: entry})
        c = snapshot_from_records(str(run.out), {"environment": run.environment}, [record])
        comp = compare_snapshots(b, c, latency=self.latency,
                                 tolerances={item.case.base_id: dict(item.case.spec.regression)})
        for w in comp.warnings:
            note = f"baseline {base.label}: {w}"
            if note not in self.notes:
                self.notes.append(note)
        for r in comp.rows:
            if r.verdict != "unchanged" or r.change_pct is not None:
                item.user_properties.append((f"baseline:{r.metric}" + (f"@{r.reference}" if r.reference else ""),
                                             f"{r.verdict} ({r.detail})"))
        return comp

    def finish(self) -> None:
        report = not self.config.getoption("imgx_no_report")
        for run in self.runs.values():
            if run.ctx is None:
                continue
            run.finish(report)
            self.notes.append(f"{run.suite.name}: run directory {run.out} ({run.ran} ran, {run.reused} reused)")
            if self.update_baseline:
                from imgx.compare import write_baseline

                path = write_baseline(run.out, self.baseline_path)
                self.notes.append(f"{run.suite.name}: baseline written to {path}")


def pytest_collection_finish(session: pytest.Session) -> None:
    state: _State | None = getattr(session.config, _STATE, None)
    if state is not None:
        state.plan_runs(session.items)


def pytest_sessionfinish(session: pytest.Session) -> None:
    state: _State | None = getattr(session.config, _STATE, None)
    if state is not None:
        with _case_warnings():  # writing tables and the report is the run's work, as under `imgx run`
            state.finish()


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    state: _State | None = getattr(config, _STATE, None)
    if state is None or not (state.notes or any(run.records for run in state.runs.values())):
        return
    from imgx.console import results_table, use_color

    terminalreporter.section("imgx")
    tw = config.get_terminal_writer()
    for run in state.runs.values():
        records = [run.records[c.key] for c in run.planned if c.key in run.records]
        if records and config.get_verbosity() >= -1:  # -q keeps the table (a CI log wants it); -qq drops it
            terminalreporter.write(results_table(records, color=use_color(isatty=tw.hasmarkup), width=tw.fullwidth,
                                                 reused=run.reused_ids, baseline=state.case_verdicts or None))
    for note in state.notes:
        terminalreporter.write_line(note)


def pytest_unconfigure(config: pytest.Config) -> None:
    if hasattr(config, _STATE):
        delattr(config, _STATE)


__all__ = ["CaseItem", "ImgxHookSpecs", "SuiteFile"]
