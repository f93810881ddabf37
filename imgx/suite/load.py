"""Read a suite file (YAML ``safe_load`` only) and validate it completely before anything runs.

Every problem is collected and reported together, each as ``FILE:LINE: FIELD.PATH: message``.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from imgx.data import DATASETS, PAIRS, STYLES
from imgx.errors import SuiteError
from imgx.metrics import FEATURE_EXTRACTORS, METRICS, per_part
from imgx.models import MODELS, SCHEDULERS
from imgx.models.protocol import CHECKPOINT_TASKS, is_user_model
from imgx.suite.preflight import (
    GATE_FORMS,
    gate_number_message,
    gate_problem,
    missing_paths,
    parse_gate,
    reference_problem,
    resolve_paths,
    suggest_key,
    weights_warning,
)
from imgx.suite.schema import (
    AXIS_TASKS,
    BATCH_TASKS,
    DEVICE_PATTERN,
    SWEEP_AXES,
    TOLERANCE_PATTERN,
    CaseSpec,
    SuiteSpec,
)
from imgx.tasks import TASKS

MAX_FILE_BYTES = 1_000_000
USER_MODEL_TASKS = {"colorize", "translate", "generate", "edit", "text-to-image"}
# ModelSpec fields that only the built-in diffusers loaders read; a user's model gets its own keys instead.
BUILTIN_ONLY = {"weights", "variant", "safety_checker", "attention", "compile", "channels_last", "dtype"}
MAX_EXPANDED_NODES = 100_000  # refuses alias bombs ("billion laughs") before they are built


@dataclass
class Suite:
    """A validated suite: its file, the file's sha256, the suite-level settings and the validated cases."""

    path: Path
    sha256: str
    spec: SuiteSpec
    cases: list[CaseSpec]
    # Problems that may go away before the run (weights not downloaded yet), by case id: ``imgx validate``
    # warns (errors with --strict), ``imgx run`` refuses the selected cases' before the first one starts.
    warnings: dict[str, list[str]] = field(default_factory=dict)
    root: Any = None  # the YAML node tree (for line numbers of later checks); None for an in-memory suite

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
        self.items.append(self.format(loc, message, line_loc))

    def format(self, loc: tuple | list, message: str, line_loc: tuple | list | None = None) -> str:
        """``FILE:LINE: FIELD.PATH: message``."""
        line = _line_of(self.root, line_loc if line_loc is not None else loc)
        where = f"{self.path}:{line}" if line else str(self.path)
        return f"{where}: {_fmt_path(loc)}: {message}"

    def add_errors(self, prefix: tuple, errors: list[dict], model: type | None = None) -> None:
        """Add pydantic errors under ``prefix``; ``model`` (the class validated there) gives "did you mean"."""
        for e in errors:
            loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal["))))
            msg = e["msg"]
            if e["type"] == "extra_forbidden":
                msg = "unknown key" + suggest_key(model, loc)
            elif len(loc) == 2 and loc[0] == "gates" and isinstance(e.get("input"), (int, float)):
                msg = gate_number_message(str(loc[1]), e["input"])
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
    _check_model(case, loc, problems)
    _check_data_spec(case.data, task, loc + ("data",), problems)
    if task == "score":
        from imgx.tasks.score import score_problems

        for where, message in score_problems(case):
            problems.add(loc + where, message)
    if case.data.name in DATASETS:
        _check_pairs(case, loc, problems)
    if case.reference_data is not None and task != "text-to-image":
        problems.add(loc + ("reference_data",), f"reference_data applies to task 'text-to-image', not {task!r}")
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
        if field == "regression" and per_part(name):  # one row of a per-part metric: target_mse[brighter]
            continue
        if name not in METRICS and not name.startswith("latency_ms_"):
            problems.add(loc + (field, name), METRICS.suggest(name.partition("[")[0]))
    for name, expr in case.gates.items():
        gate = parse_gate(expr)
        if gate is None:
            problems.add(loc + ("gates", name), f"gate {expr!r} is not {GATE_FORMS}")
        elif name in METRICS or name.startswith("latency_ms_"):
            why = gate_problem(case, name) or (reference_problem(case, name, gate.reference) if gate.reference
                                               else None)
            if why:
                problems.add(loc + ("gates", name), why)
    for where, message in missing_paths(case):
        problems.add(loc + where, message)
    for name, tol in case.regression.items():
        if not re.match(TOLERANCE_PATTERN, str(tol)):
            problems.add(loc + ("regression", name), f"tolerance {tol!r} is not a number or a percentage like 2%")
    if task == "edit" and not case.prompts and case.data.name not in ("edit-csv", "photo-edits"):
        problems.add(loc + ("prompts",), "an edit case needs prompts (or data: edit-csv or photo-edits, whose rows "
                                         "carry instructions)")
    if task == "edit" and case.model.weights == "train" and case.model.name == "diffusers-img2img":
        problems.add(loc + ("model", "weights"), "weights: train trains an InstructPix2Pix (model: instruct-pix2pix); "
                                                 "diffusers-img2img takes a hub id, a local folder or tiny")
    if task == "edit" and "train" in case.model_fields_set and case.model.weights != "train":
        problems.add(loc + ("train",), "train: applies to an edit case only with model.weights: train")
    if task == "text-to-image":
        _check_text_to_image(case, loc, problems)
    if task == "generate" and case.samples is not None and case.samples < 2:
        problems.add(loc + ("samples",), "a generate case needs at least 2 samples (FID/KID)")
    if task in ("edit", "text-to-image") and case.inference.scheduler not in SCHEDULERS:
        problems.add(loc + ("inference", "scheduler"), SCHEDULERS.suggest(case.inference.scheduler))
    for key in sorted({"batch_sweep", "max_batch"} & case.inference.model_fields_set):
        if task not in BATCH_TASKS:
            problems.add(loc + ("inference", key), f"task {task!r} cannot batch sweep points "
                                                   f"(only {', '.join(sorted(BATCH_TASKS))})")
    devices = case.device if isinstance(case.device, list) else [case.device]
    if isinstance(case.device, list) and not devices:
        problems.add(loc + ("device",), "empty device list")
    for i, dev in enumerate(devices):
        if not re.match(DEVICE_PATTERN, str(dev)):
            where = loc + (("device", i) if isinstance(case.device, list) else ("device",))
            problems.add(where, f"unknown device {dev!r}; use cpu, cuda or cuda:N")


def _check_model(case: CaseSpec, loc: tuple, problems: _Problems) -> None:
    """The model's name (built-in, entry point or import path), its options and ``checkpoint:``; nothing imported."""
    task, name = case.task, case.model.name
    user = is_user_model(name)
    if name not in MODELS and not user:
        message = MODELS.suggest(name)
        if ":" in str(name):
            message = f"{name!r} is not an import path 'pkg.module:attr' (nor a registered model)"
        problems.add(loc + ("model", "name"), message)
    elif user:
        if task not in USER_MODEL_TASKS:
            problems.add(loc + ("model", "name"), f"task {task!r} takes built-in models only; a model of your own "
                                                  f"serves {', '.join(sorted(USER_MODEL_TASKS))}")
        if task == "translate" and case.data.name in DATASETS and DATASETS.meta(case.data.name).get("paired") is False:
            problems.add(loc + ("data", "name"), f"a model of your own is trained on pairs by imgx's supervised loop; "
                                                 f"data set {case.data.name!r} is unpaired (use photo-pairs or "
                                                 "folder-pairs)")
        for key in sorted(BUILTIN_ONLY & case.model.model_fields_set):
            problems.add(loc + ("model", key), f"{key!r} is an option of the built-in diffusers models; a model of "
                                               "your own takes its own keyword arguments")
        for axis in sorted(BUILTIN_ONLY & set(case.sweep)):
            problems.add(loc + ("sweep", axis), f"sweep axis {axis!r} sets an option of the built-in diffusers "
                                                "models; a model of your own would never see it")
    else:
        meta = MODELS.meta(name)
        if meta["task"] != task:
            problems.add(loc + ("model", "name"), f"model {name!r} is for task {meta['task']!r}, not {task!r}")
        for key in sorted(case.model.model_fields_set - {"name", "checkpoint"} - meta["options"]):
            if key in (case.model.model_extra or {}):
                hint = _model_key_hint(key, meta["options"])
                problems.add(loc + ("model", key), f"unknown key{hint} (model {name!r} takes no option {key!r}; "
                                                   "only a model of your own takes other keys)")
            else:
                problems.add(loc + ("model", key), f"model {name!r} takes no option {key!r}")
    checkpoint = case.model.checkpoint
    if checkpoint is None:
        return
    if task not in CHECKPOINT_TASKS:
        problems.add(loc + ("model", "checkpoint"), "checkpoint: applies to tasks "
                                                    f"{', '.join(sorted(CHECKPOINT_TASKS))}, not {task!r}")
    elif not checkpoint.endswith(".safetensors"):
        problems.add(loc + ("model", "checkpoint"), f"{checkpoint}: imgx loads safetensors checkpoints only (a pickle "
                                                    "can run code); save the state_dict with "
                                                    "safetensors.torch.save_file(model.state_dict(), 'x.safetensors')")
    elif not Path(checkpoint).is_file():
        problems.add(loc + ("model", "checkpoint"), f"{checkpoint}: no such file")
    if "train" in case.model_fields_set:
        problems.add(loc + ("train",), "train: with model.checkpoint: the checkpoint is evaluated as it is, never "
                                       "trained; remove one of them")


def _model_key_hint(key: str, options: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(options | {"checkpoint"}), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _check_pairs(case: CaseSpec, loc: tuple, problems: _Problems) -> None:
    """Paired and unpaired data (pair, style, a/ and b/ names) and the translation models' needs."""
    data = case.data
    if data.name == "photo-pairs":
        if not data.pair:
            problems.add(loc + ("data", "pair"), f"data set 'photo-pairs' needs a pair ({', '.join(PAIRS)})",
                         line_loc=loc + ("data",))
        elif data.pair not in PAIRS:
            problems.add(loc + ("data", "pair"), PAIRS.suggest(data.pair))
        elif case.task == "colorize" and data.pair != "gray":
            problems.add(loc + ("data", "pair"), f"colorize reads photo-pairs only with pair: gray, not {data.pair!r}")
    if data.name == "photo-styles":
        if not data.style:
            problems.add(loc + ("data", "style"), f"data set 'photo-styles' needs a style ({', '.join(STYLES)})",
                         line_loc=loc + ("data",))
        elif data.style not in STYLES:
            problems.add(loc + ("data", "style"), STYLES.suggest(data.style))
    if data.name == "folder-pairs" and data.path:
        from imgx.data.folder_pairs import pair_problems

        for message in pair_problems(data.path):
            problems.add(loc + ("data", "path"), message)
    if case.model.name not in MODELS or MODELS.meta(case.model.name)["task"] != "translate":
        return
    meta = MODELS.meta(case.model.name)
    if meta.get("needs_pairs") and data.name in DATASETS and DATASETS.meta(data.name).get("paired") is False:
        problems.add(loc + ("data", "name"), f"model {case.model.name!r} trains on pairs; data set {data.name!r} is "
                                             "unpaired (use cyclegan, or photo-pairs / folder-pairs)")
    size_problem = _size_problem(case)
    if size_problem:
        problems.add(loc + ("data", "image_size"), size_problem, line_loc=loc + ("data",))


def _size_problem(case: CaseSpec) -> str | None:
    """Why the image size cannot go through the model's halvings (U-Net depth, CycleGAN's two), or None."""
    meta = MODELS.meta(case.model.name) if case.model.name in MODELS else {}
    if "halvings" not in meta:
        return None
    option, default = meta["halvings"]
    halvings = (getattr(case.model, option) if option else None) or default
    size = case.data.image_size or 32
    if size % 2**halvings:
        what = f"depth {halvings}" if option else f"{halvings} halvings"
        return (f"image_size {size} cannot be halved cleanly by {case.model.name}'s {what}: use a multiple of "
                f"{2**halvings}" + (f" or a smaller {option}" if option else ""))
    return None


def _check_data_spec(data, task: str, loc: tuple, problems: _Problems) -> None:
    if data.name not in DATASETS:
        problems.add(loc + ("name",), DATASETS.suggest(data.name))
        return
    meta = DATASETS.meta(data.name)
    if task not in meta["tasks"]:
        problems.add(loc + ("name",), f"data set {data.name!r} cannot feed task {task!r} "
                                      f"(it feeds {', '.join(sorted(meta['tasks']))})")
    for key in sorted(data.model_fields_set - {"name"} - meta["options"]):
        problems.add(loc + (key,), f"data set {data.name!r} takes no option {key!r}")
    if data.name in ("folder", "edit-csv", "folder-pairs") and not data.path:
        problems.add(loc + ("path",), f"data set {data.name!r} needs a path")
    elif data.name == "edit-csv" and Path(data.path).is_file():
        from imgx.data.edit_csv import edit_csv_problems

        for message in edit_csv_problems(Path(data.path)):
            problems.add(loc + ("path",), message)


def _check_text_to_image(case: CaseSpec, loc: tuple, problems: _Problems) -> None:
    """Prompts or captions to use, captions to train on, a usable reference set."""
    captions = case.data.name in DATASETS and bool(DATASETS.meta(case.data.name).get("captions"))
    if case.prompts is not None and not case.prompts:
        problems.add(loc + ("prompts",), "an empty prompts list; give prompts or leave the key out to use the data "
                                         "set's captions")
    elif not case.prompts and case.data.name in DATASETS and not captions:
        problems.add(loc + ("prompts",), f"a text-to-image case needs prompts: data set {case.data.name!r} has no "
                                         "captions to use instead")
    if case.model.weights == "train" and case.data.name in DATASETS and not captions:
        problems.add(loc + ("model", "weights"), f"weights: train needs image captions to train on; data set "
                                                 f"{case.data.name!r} has none (use data: digits)")
    if case.reference_data is not None:
        _check_data_spec(case.reference_data, "text-to-image", loc + ("reference_data",), problems)
    clip_model = (case.metric_options.get("clip_score") or {}).get("model")
    if clip_model == "train" and not captions:
        problems.add(loc + ("metric_options", "clip_score", "model"),
                     f"model: train trains a CLIP on image-caption pairs; data set {case.data.name!r} has no captions")


CALL_ARGS = ("image_guidance_scale", "guidance_scale", "num_inference_steps", "strength")


def _check_call_args(case_dict: dict, case: CaseSpec, loc: tuple, problems: _Problems) -> None:
    """Pipeline call settings (``inference:`` or a sweep axis) the model's pipelines do not take (``call_args``)."""
    meta = MODELS.meta(case.model.name) if case.model.name in MODELS else {}
    takes = meta.get("call_args")
    if takes is None:
        return
    sweep = case_dict.get("sweep") if isinstance(case_dict.get("sweep"), dict) else {}
    for key in CALL_ARGS:
        if key in takes:
            continue
        where = (("sweep", key) if key in sweep else ("inference", key)
                 if key in case.inference.model_fields_set else None)
        if where:
            problems.add(loc + where, f"model {case.model.name!r} takes no {key!r} (its pipeline's __call__ has "
                                      f"none); it takes {', '.join(sorted(takes))}")


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
            target = SWEEP_AXES[axis]
            if target[0] == "model" and case.model.name in MODELS and case.task == "translate" \
                    and MODELS.meta(case.model.name)["options"] is not None \
                    and target[1] not in MODELS.meta(case.model.name)["options"]:
                problems.add(aloc, f"sweep axis {axis!r}: model {case.model.name!r} takes no option {target[1]!r}")
                break
            if axis == "image_size" and _size_problem(checked):
                problems.add(aloc + (j,), _size_problem(checked))
            if axis == "scheduler" and value not in SCHEDULERS:
                problems.add(aloc + (j,), SCHEDULERS.suggest(value))
            if axis == "device" and not re.match(DEVICE_PATTERN, str(checked.device)):
                problems.add(aloc + (j,), f"unknown device {value!r}; use cpu, cuda or cuda:N")
    return points


def _check_rest(merged: dict, errors: list[dict], loc: tuple, path: Path, problems: _Problems) -> None:
    """Report a case's other problems too: drop the fields pydantic refused and check what is left."""
    rest = copy.deepcopy(merged)
    rest.pop("sweep", None)
    for e in errors:
        where = [p for p in e["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal[")))]
        parent = rest
        for part in where[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and where:
            parent.pop(where[-1], None)
        if where and where[0] == "metrics":  # gates would be judged against a list that is not the suite's
            rest.pop("gates", None)
    try:
        case = CaseSpec.model_validate(rest)
    except ValidationError:
        return  # a required field is what was wrong: nothing more can be checked
    resolve_paths(case, path.resolve().parent)
    _check_names(case, loc, problems)


def load_suite(path: str | Path | dict) -> Suite:
    """Read and validate a suite file (or an in-memory suite mapping, as the YAML would give).

    Raises:
        SuiteError: with one message per problem, each naming the file, line and field path.
    """
    if isinstance(path, dict):  # an in-memory suite (imgx.run): relative paths resolve against the working directory
        data, root = copy.deepcopy(path), None
        dict_bytes = json.dumps(data, sort_keys=True, default=str).encode()
        path = Path("<suite dict>")
    else:
        path = Path(path)
        data, root = _read_yaml(path)
        dict_bytes = None
    problems = _Problems(path, root)
    if not isinstance(data, dict):
        raise SuiteError([f"{path}: a suite is a YAML mapping with 'suite' and 'cases' keys"])
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as exc:
        problems.add_errors((), exc.errors(), SuiteSpec)
        raise SuiteError(problems.items) from None
    if "id" in spec.defaults:
        problems.add(("defaults", "id"), "defaults cannot set an id")
    cases: list[CaseSpec] = []
    warnings: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    total = 0
    for i, raw in enumerate(spec.cases):
        loc = ("cases", i)
        if not isinstance(raw, dict):
            problems.add(loc, "a case is a mapping")
            continue
        merged = _merge(spec.defaults, raw)
        if merged.get("task") == "score":  # images made elsewhere: no model to name
            merged.setdefault("model", {"name": "outputs"})
        try:
            case = CaseSpec.model_validate(merged)
        except ValidationError as exc:
            for e in exc.errors():
                # A key that came from defaults is reported where it is written.
                first = e["loc"][0] if e["loc"] else None
                prefix = ("defaults",) if first not in raw and first in spec.defaults else loc
                problems.add_errors(prefix, [e], CaseSpec)
            _check_sweep(merged, None, loc, problems)
            _check_rest(merged, exc.errors(), loc, path, problems)
            continue
        resolve_paths(case, path.resolve().parent)
        if case.id in seen:
            problems.add(loc + ("id",), f"duplicate id {case.id!r} (also cases[{seen[case.id]}])")
        seen.setdefault(case.id, i)
        _check_names(case, loc, problems)
        warning = weights_warning(case) if case.task in TASKS else None
        if warning:
            warnings.setdefault(case.id, []).append(problems.format(loc + warning[0], warning[1]))
        points = _check_sweep(merged, case, loc, problems)
        _check_call_args(merged, case, loc, problems)
        if isinstance(case.device, list):
            points *= max(1, len(case.device))
        total += points
        cases.append(case)
    if total > spec.max_cases:
        problems.add(("cases",), f"the sweeps expand to {total} cases, past the cap of {spec.max_cases} "
                                 "(raise max_cases in the suite if you mean it)")
    if problems.items:
        raise SuiteError(problems.items)
    digest = hashlib.sha256(dict_bytes if dict_bytes is not None else path.read_bytes()).hexdigest()
    return Suite(path=path, sha256=digest, spec=spec, cases=cases, warnings=warnings, root=root)


def _user_code_importable(suite_path: Path | str) -> None:
    """Make modules beside the suite file, or in the working directory, importable (appended to ``sys.path``).

    A user's ``model: {name: "my_models:Colorizer"}`` then imports the same way under the ``imgx`` console script
    (whose ``sys.path[0]`` is its own folder), ``python -m imgx`` and pytest. Appended, not prepended: what is
    already on the path (``PYTHONPATH``, installed packages) wins, so ``imgx ab``'s workers, each with its own
    tree on ``PYTHONPATH``, keep importing their own revision of the model.
    """
    import os
    import sys

    folders = [os.getcwd()]
    if str(suite_path) != "<suite dict>" and Path(suite_path).exists():
        folders.insert(0, str(Path(suite_path).resolve().parent))
    for folder in folders:
        if folder not in sys.path:
            sys.path.append(folder)


def user_model_problems(suite: Suite) -> list[str]:
    """Import the user's models a suite names (``imgx run`` only; ``validate`` never imports) and check them.

    One message per problem, ``FILE:LINE: FIELD.PATH: message``: a module that does not import, a missing or
    non-callable attribute, a sweep axis or ``inference:`` setting the model's signature does not accept.
    """
    from imgx.models.protocol import signature_problems

    problems = _Problems(suite.path, suite.root)
    for i, case in enumerate(suite.cases):
        if not is_user_model(case.model.name):
            continue
        _user_code_importable(suite.path)
        for where, message in signature_problems(case):
            problems.add(("cases", i) + where, message)
    return problems.items
