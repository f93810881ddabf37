"""Read a suite file (YAML ``safe_load`` only) and validate it completely before anything runs.

Every problem is collected and reported together, each as ``FILE:LINE: FIELD.PATH: message``.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from imgx.data import DATASETS
from imgx.errors import SuiteError
from imgx.metrics import FEATURE_EXTRACTORS, METRICS
from imgx.models import MODELS, SCHEDULERS
from imgx.suite.schema import (
    AXIS_TASKS,
    DEVICE_PATTERN,
    GATE_PATTERN,
    SWEEP_AXES,
    TOLERANCE_PATTERN,
    CaseSpec,
    SuiteSpec,
)
from imgx.tasks import TASKS

MAX_FILE_BYTES = 1_000_000
MAX_EXPANDED_NODES = 100_000  # refuses alias bombs ("billion laughs") before they are built


@dataclass
class Suite:
    """A validated suite: its file, the file's sha256, the suite-level settings and the validated cases."""

    path: Path
    sha256: str
    spec: SuiteSpec
    cases: list[CaseSpec]

    @property
    def name(self) -> str:
        return self.spec.suite


def _fmt_path(loc: tuple | list) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # breaks recursive aliases
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[id(node)] = min(size, 10 * MAX_EXPANDED_NODES)
    return memo[id(node)]


def _line_of(node: yaml.Node | None, loc: tuple | list) -> int | None:
    """The 1-based line of the YAML node at ``loc``, or of its nearest existing parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if getattr(k, "value", None) == part]
            if not match:
                break
            node = match[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


class _Problems:
    def __init__(self, path: Path, root: yaml.Node | None):
        self.path, self.root, self.items = path, root, []

    def add(self, loc: tuple | list, message: str, line_loc: tuple | list | None = None) -> None:
        line = _line_of(self.root, line_loc if line_loc is not None else loc)
        where = f"{self.path}:{line}" if line else str(self.path)
        self.items.append(f"{where}: {_fmt_path(loc)}: {message}")

    def add_errors(self, prefix: tuple, errors: list[dict]) -> None:
        for e in errors:
            loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal["))))
            msg = e["msg"]
            if e["type"] == "extra_forbidden":
                msg = "unknown key"
            elif e["type"] == "missing":
                msg = "required key is missing"
            elif "input" in e and e["type"] not in ("missing",):
                msg = f"{msg} (got {e['input']!r})"[:300]
            self.add(prefix + loc, msg)


def _read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SuiteError([f"{path}: no such suite file"]) from None
    except IsADirectoryError:
        raise SuiteError([f"{path}: is a directory, not a suite file"]) from None
    except OSError as exc:
        raise SuiteError([f"{path}: cannot read: {exc.strerror}"]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise SuiteError([f"{path}: file is {len(raw)} bytes; suites are limited to {MAX_FILE_BYTES}"])
    try:
        text = raw.decode("utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None and _expanded_size(root, {}) > MAX_EXPANDED_NODES:
            raise SuiteError([f"{path}: refusing a YAML document that expands past {MAX_EXPANDED_NODES} nodes "
                              "(aliases/anchors)"])
        data = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise SuiteError([f"{path}: not UTF-8 text"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).split("\n")[0]
        raise SuiteError([f"{where}: invalid YAML: {problem}"]) from None
    return data, root


def _merge(defaults: dict, case: dict) -> dict:
    out = copy.deepcopy(defaults)
    for key, value in case.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _set(d: dict, path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        d = d.setdefault(part, {}) if isinstance(d.get(part, {}), dict) else d
    d[path[-1]] = value


def _check_names(case: CaseSpec, loc: tuple, problems: _Problems) -> None:
    """Names checked against the registries (with suggestions) and cross-field rules."""
    task = case.task
    if task not in TASKS:
        problems.add(loc + ("task",), TASKS.suggest(task))
        return
    if case.model.name not in MODELS:
        problems.add(loc + ("model", "name"), MODELS.suggest(case.model.name))
    else:
        meta = MODELS.meta(case.model.name)
        if meta["task"] != task:
            problems.add(loc + ("model", "name"), f"model {case.model.name!r} is for task {meta['task']!r}, "
                                                  f"not {task!r}")
        for key in sorted(case.model.model_fields_set - {"name"} - meta["options"]):
            problems.add(loc + ("model", key), f"model {case.model.name!r} takes no option {key!r}")
    if case.data.name not in DATASETS:
        problems.add(loc + ("data", "name"), DATASETS.suggest(case.data.name))
    else:
        meta = DATASETS.meta(case.data.name)
        if task not in meta["tasks"]:
            problems.add(loc + ("data", "name"), f"data set {case.data.name!r} cannot feed task {task!r} "
                                                 f"(it feeds {', '.join(sorted(meta['tasks']))})")
        for key in sorted(case.data.model_fields_set - {"name"} - meta["options"]):
            problems.add(loc + ("data", key), f"data set {case.data.name!r} takes no option {key!r}")
        if case.data.name in ("folder", "edit-csv") and not case.data.path:
            problems.add(loc + ("data", "path"), f"data set {case.data.name!r} needs a path")
        elif case.data.name == "edit-csv" and Path(case.data.path).is_file():
            from imgx.data.edit_csv import edit_csv_problems

            for message in edit_csv_problems(Path(case.data.path)):
                problems.add(loc + ("data", "path"), message)
    for i, metric in enumerate(case.metrics):
        if metric not in METRICS:
            problems.add(loc + ("metrics", i), METRICS.suggest(metric))
            continue
        info = METRICS.get(metric)
        if not info.requestable:
            problems.add(loc + ("metrics", i), f"{metric!r} is reported automatically; request 'latency' instead"
                         if metric.startswith("latency") else f"{metric!r} is reported automatically")
        elif task not in info.tasks:
            problems.add(loc + ("metrics", i), f"metric {metric!r} does not apply to task {task!r}")
    if len(set(case.metrics)) != len(case.metrics):
        problems.add(loc + ("metrics",), "a metric is listed twice")
    for metric, options in case.metric_options.items():
        if metric not in case.metrics:
            problems.add(loc + ("metric_options", metric), f"options for {metric!r}, which is not in metrics")
        allowed = METRICS.get(metric).options if metric in METRICS else frozenset()
        for key in sorted(set(options) - allowed):
            problems.add(loc + ("metric_options", metric, key),
                         f"metric {metric!r} takes no option {key!r}" + (f"; options: {', '.join(sorted(allowed))}"
                                                                         if allowed else ""))
        features = options.get("features")
        if features is not None and features not in FEATURE_EXTRACTORS:
            problems.add(loc + ("metric_options", metric, "features"), FEATURE_EXTRACTORS.suggest(features))
    for name in {**case.gates, **case.regression}:
        field = "gates" if name in case.gates else "regression"
        if name not in METRICS and not name.startswith("latency_ms_"):
            problems.add(loc + (field, name), METRICS.suggest(name))
    for name, expr in case.gates.items():
        if not re.match(GATE_PATTERN, str(expr)):
            problems.add(loc + ("gates", name), f"gate {expr!r} is not '<op> <number>' with op one of >= <= > <")
    for name, tol in case.regression.items():
        if not re.match(TOLERANCE_PATTERN, str(tol)):
            problems.add(loc + ("regression", name), f"tolerance {tol!r} is not a number or a percentage like 2%")
    if task == "edit" and not case.prompts and case.data.name not in ("edit-csv", "photo-edits"):
        problems.add(loc + ("prompts",), "an edit case needs prompts (or data: edit-csv or photo-edits, whose rows "
                                         "carry instructions)")
    if task == "edit" and "train" in case.model_fields_set and case.model.weights != "train":
        problems.add(loc + ("train",), "train: applies to an edit case only with model.weights: train")
    if task == "edit" and case.inference.scheduler not in SCHEDULERS:
        problems.add(loc + ("inference", "scheduler"), SCHEDULERS.suggest(case.inference.scheduler))
    devices = case.device if isinstance(case.device, list) else [case.device]
    if isinstance(case.device, list) and not devices:
        problems.add(loc + ("device",), "empty device list")
    for i, dev in enumerate(devices):
        if not re.match(DEVICE_PATTERN, str(dev)):
            where = loc + (("device", i) if isinstance(case.device, list) else ("device",))
            problems.add(where, f"unknown device {dev!r}; use cpu, cuda or cuda:N")


def _check_sweep(case_dict: dict, case: CaseSpec | None, loc: tuple, problems: _Problems) -> int:
    """Validate every sweep value in place of its field; returns the number of points (0 when invalid)."""
    sweep = case_dict.get("sweep") or {}
    task = case_dict.get("task")
    if not isinstance(sweep, dict):
        return 0
    points = 1
    for axis, values in sweep.items():
        aloc = loc + ("sweep", axis)
        if axis not in SWEEP_AXES:
            close = [a for a in SWEEP_AXES if a.startswith(str(axis)[:4])]
            hint = f"; did you mean {close[0]!r}?" if close else f"; axes: {', '.join(SWEEP_AXES)}"
            problems.add(aloc, f"unknown sweep axis {axis!r}{hint}")
            continue
        if axis in AXIS_TASKS and task not in AXIS_TASKS[axis]:
            problems.add(aloc, f"sweep axis {axis!r} does not apply to task {task!r}")
            continue
        if not isinstance(values, list) or not values:
            problems.add(aloc, "a sweep axis needs a non-empty list of values")
            continue
        if len({repr(v) for v in values}) != len(values):
            problems.add(aloc, "a value is listed twice")
        points *= len(values)
        if case is None:
            continue
        for j, value in enumerate(values):
            trial = copy.deepcopy(case_dict)
            trial.pop("sweep", None)
            _set(trial, SWEEP_AXES[axis], value)
            try:
                checked = CaseSpec.model_validate(trial)
            except ValidationError as exc:
                for e in exc.errors():
                    problems.add(aloc + (j,), f"{e['msg']} (got {value!r})")
                continue
            if axis == "scheduler" and value not in SCHEDULERS:
                problems.add(aloc + (j,), SCHEDULERS.suggest(value))
            if axis == "device" and not re.match(DEVICE_PATTERN, str(checked.device)):
                problems.add(aloc + (j,), f"unknown device {value!r}; use cpu, cuda or cuda:N")
    return points


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file.

    Raises:
        SuiteError: with one message per problem, each naming the file, line and field path.
    """
    path = Path(path)
    data, root = _read_yaml(path)
    problems = _Problems(path, root)
    if not isinstance(data, dict):
        raise SuiteError([f"{path}: a suite is a YAML mapping with 'suite' and 'cases' keys"])
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as exc:
        problems.add_errors((), exc.errors())
        raise SuiteError(problems.items) from None
    if "id" in spec.defaults:
        problems.add(("defaults", "id"), "defaults cannot set an id")
    cases: list[CaseSpec] = []
    seen: dict[str, int] = {}
    total = 0
    for i, raw in enumerate(spec.cases):
        loc = ("cases", i)
        if not isinstance(raw, dict):
            problems.add(loc, "a case is a mapping")
            continue
        merged = _merge(spec.defaults, raw)
        try:
            case = CaseSpec.model_validate(merged)
        except ValidationError as exc:
            for e in exc.errors():
                # A key that came from defaults is reported where it is written.
                first = e["loc"][0] if e["loc"] else None
                prefix = ("defaults",) if first not in raw and first in spec.defaults else loc
                problems.add_errors(prefix, [e])
            _check_sweep(merged, None, loc, problems)
            continue
        if case.id in seen:
            problems.add(loc + ("id",), f"duplicate id {case.id!r} (also cases[{seen[case.id]}])")
        seen.setdefault(case.id, i)
        _check_names(case, loc, problems)
        points = _check_sweep(merged, case, loc, problems)
        if isinstance(case.device, list):
            points *= max(1, len(case.device))
        total += points
        cases.append(case)
    if total > spec.max_cases:
        problems.add(("cases",), f"the sweeps expand to {total} cases, past the cap of {spec.max_cases} "
                                 "(raise max_cases in the suite if you mean it)")
    if problems.items:
        raise SuiteError(problems.items)
    return Suite(path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest(), spec=spec, cases=cases)
