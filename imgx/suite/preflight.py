"""What a suite can be checked for before anything runs, beyond its structure and names.

- Paths resolve against the suite file's folder (absolute paths and ``~`` as they are), once, at load time.
- Paths that must exist do (``data.path``; ``data.root`` unless ``download: true``; a path-like ``weights``;
  ``model.checkpoint``).
- A gate reads a row the case computes (``psnr`` needs ``psnr`` in ``metrics``; ``latency_ms_p50`` needs
  ``latency``; a colorize case never has ``fid``).
- A gate relative to a reference (``"> gray-copy"``, ``"<= 0.5 * untrained"``) names a reference row the case
  computes for that metric (:func:`references`), known from the task without running it.
- Hub weights that are neither local nor in the Hugging Face cache when the hub cannot be reached: a warning
  for ``imgx validate`` (weights may be downloaded later), an error for ``imgx run`` before its first case.

Nothing here imports torch, diffusers or transformers.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from imgx.metrics import METRICS
from imgx.suite.schema import GATE_PATTERN, REFERENCE_GATE_PATTERN

# A hub id (``org/name``); a string of this shape is a path only where it exists or starts like one.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
PATH_START = ("./", "../", "/", "~", ".\\", "..\\")
# Rows a task emits for its own model whatever the suite asks, and rows that come with ``latency``.
ALWAYS = {"colorize": {"train_seconds", "train_images_per_second"},
          "generate": {"train_seconds", "train_images_per_second"}}
# Rows a task emits only for a model trained here (``model.weights: train``).
WITH_TRAINING = {"edit": {"train_seconds"}, "text-to-image": {"train_seconds", "train_images_per_second"}}
WITH_LATENCY = {"latency_ms_p50", "latency_ms_p90", "images_per_second", "peak_memory_mb"}
WITH_LATENCY_BY_TASK = {"edit": {"seconds_per_step"}}
NO_LATENCY = {"generate"}  # tasks whose code does not measure latency even when asked
# Model options and metric options that name weights: hub id or folder.
WEIGHT_OPTIONS = {"model"}
FILE_OPTIONS = {"weights"}
# Weights a model loads when the suite names none (only models with hub weights are listed).
DEFAULT_WEIGHTS = {"instruct-pix2pix": "timbrooks/instruct-pix2pix"}
WEIGHT_NAMES = {"tiny", "train"}  # built or trained here, never a path or a hub id


def _resolve(text: str, base: Path) -> str:
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def is_path_like(text: str, base: Path) -> bool:
    """Whether a weights string names a folder: it starts like a path, or exists relative to ``base``.

    ``org/name`` stays a hub id unless ``base/org/name`` exists.
    """
    if text in WEIGHT_NAMES:
        return False
    if text.startswith(PATH_START) or Path(text).is_absolute():
        return True
    return (base / text).exists() or not HUB_ID.match(text)


def resolve_paths(case: Any, base: Path) -> None:
    """Resolve every path of a validated case against ``base`` (the suite's folder), in place.

    Case keys then hash the resolved path: the same folder named from two suites is the same data.
    """
    for name in ("path", "root", "target", "input", "reference", "prompts"):
        value = getattr(case.data, name)
        if value:
            setattr(case.data, name, _resolve(value, base))
    weights = case.model.weights
    if weights and is_path_like(weights, base):
        case.model.weights = _resolve(weights, base)
    if case.model.checkpoint:
        case.model.checkpoint = _resolve(case.model.checkpoint, base)
    for options in case.metric_options.values():
        for key, value in list(options.items()):
            if not isinstance(value, str):
                continue
            if key in FILE_OPTIONS or (key in WEIGHT_OPTIONS and is_path_like(value, base)):
                options[key] = _resolve(value, base)




def missing_paths(case: Any) -> list[tuple[tuple, str]]:
    """``(field path, message)`` for paths a case needs that do not exist (after :func:`resolve_paths`)."""
    problems = []
    if case.data.path and not Path(case.data.path).exists():
        problems.append((("data", "path"), f"{case.data.path}: no such file or folder"))
    if case.data.root and not case.data.download and not Path(case.data.root).is_dir():
        problems.append((("data", "root"), f"{case.data.root}: no such folder (set download: true to fetch "
                                           "the data set into it)"))
    weights = case.model.weights
    if weights and Path(weights).is_absolute() and not Path(weights).exists():
        problems.append((("model", "weights"), f"{weights}: no such folder"))
    for metric, options in case.metric_options.items():
        for key, value in options.items():
            if isinstance(value, str) and Path(value).is_absolute() and not Path(value).exists():
                problems.append((("metric_options", metric, key), f"{value}: no such file or folder"))
    return problems


def gate_problem(case: Any, metric: str) -> str | None:
    """Why a gate on ``metric`` can never be evaluated for this case, or ``None`` when it can."""
    task = case.task
    if metric in case.metrics:
        return None
    if metric in ALWAYS.get(task, set()):
        return None
    if metric in WITH_TRAINING.get(task, set()):
        return None if case.model.weights == "train" else (
            f"gate on {metric!r}: task {task!r} reports it only for a model trained here (model.weights: train)")
    latency_rows = WITH_LATENCY | WITH_LATENCY_BY_TASK.get(task, set())
    if metric in latency_rows or metric.startswith("latency_ms_"):
        if task in NO_LATENCY:
            return f"gate on {metric!r}: task {task!r} does not measure latency"
        if metric.startswith("latency_ms_") and task == "colorize" and metric not in latency_rows:
            return f"gate on {metric!r}: task {task!r} reports latency_ms_p50 and latency_ms_p90 only"
        return None if "latency" in case.metrics else f"gate on {metric!r} needs 'latency' in metrics"
    if metric == "speedup":
        return "gate on 'speedup': it compares sweep combinations with each other, not one case; gate on latency"
    if metric in METRICS:
        info = METRICS.get(metric)
        if info.kind == "cost" and not {"cost", "latency"} & set(case.metrics):
            return f"gate on {metric!r} needs 'cost' (or 'latency') in metrics"
        if task not in info.tasks:
            return f"gate on {metric!r}: task {task!r} never computes {metric!r}"
        if info.requestable:
            return f"gate on {metric!r}, which is not in this case's metrics: add it to metrics"
    return None


@dataclass(frozen=True)
class Gate:
    """A parsed gate: ``op bound`` (absolute) or ``op scale * reference`` (relative to a reference row)."""

    op: str
    bound: float | None = None
    reference: str | None = None
    scale: float = 1.0
    text: str = ""  # the number as written (an absolute gate's message quotes it)

    def describe(self) -> str:
        """The gate as written, normalised: ``>= 0.8``, ``> gray-copy``, ``<= 0.5 * untrained``."""
        if self.reference is None:
            return f"{self.op} {self.bound:g}"
        return f"{self.op} {'' if self.scale == 1 else f'{self.scale:g} * '}{self.reference}"


def parse_gate(expr: Any) -> Gate | None:
    """The gate ``expr`` as a :class:`Gate`, or None when it is neither ``<op> <number>`` nor a reference gate."""
    text = str(expr)
    m = re.match(GATE_PATTERN, text)
    if m:
        return Gate(m.group(1), bound=float(m.group(2)), text=m.group(2))
    m = re.match(REFERENCE_GATE_PATTERN, text)
    if m:
        return Gate(m.group(1), reference=m.group(3), scale=float(m.group(2)) if m.group(2) else 1.0)
    return None


GATE_FORMS = "'<op> <number>' or '<op> [<factor> *] <reference>' with op one of >= <= > <"
_PIXEL = {"mse", "psnr", "ssim"}
_TARGET = {"target_mse", "target_psnr", "target_ssim"}
_GROUND_TRUTH = _TARGET | {"input_ssim", "instruction_accuracy"}


def references(case: Any, metric: str) -> set[str]:
    """The reference rows a case computes for ``metric``, from the task alone (nothing runs or imports)."""
    task, trained_here = case.task, getattr(case.model, "weights", None) == "train"
    base = metric.split("[", 1)[0]  # per-instruction rows: target_mse[grayscale]
    if task == "colorize":
        return {"gray-copy"} if base in _PIXEL else set()
    if task == "generate":
        return {"untrained", "real-split"} if base in ("fid", "kid") else set()
    if task == "translate":
        if base.startswith("cycle_mse_"):
            return {"untrained"}
        return {"identity", "untrained"} if base in _PIXEL | _TARGET | {"fid", "kid"} else set()
    if task == "edit":
        if base in _GROUND_TRUTH:
            return {"identity", "oracle"} | ({"vae-floor"} if base == "target_mse" and trained_here else set())
        return {"input-copy"} if base == "clip_score" else set()
    if task == "text-to-image":
        if base in ("fid", "kid", "prompt_accuracy"):
            return {"real-split"} | ({"untrained"} if trained_here else set())
        return {"real-split"} if base == "clip_score" else set()
    return set()


def reference_problem(case: Any, metric: str, reference: str) -> str | None:
    """Why a gate of ``metric`` relative to ``reference`` can never be evaluated for this case, or None."""
    known = references(case, metric)
    if reference in known:
        return None
    if not known:
        return (f"gate on {metric!r} relative to {reference!r}: task {case.task!r} reports no reference row for "
                f"{metric!r}")
    close = difflib.get_close_matches(reference, sorted(known), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (f"gate on {metric!r} relative to {reference!r}: this case computes {metric!r} references "
            f"{', '.join(sorted(known))} only{hint}")


def gate_number_message(metric: str, value: Any) -> str:
    """The message for a bare number written as a gate, showing the accepted form."""
    op = ">="
    if metric in METRICS and not METRICS.get(metric).higher_is_better:
        op = "<="
    return (f"gate {value!r} is not '<op> <number>'; write it as \"{op} {value}\" (op one of >= <= > <), or relative "
            "to a reference row: \"> gray-copy\", \"<= 0.5 * untrained\"")


def weights_warning(case: Any) -> tuple[tuple, str] | None:
    """``(field path, message)`` when hub weights are neither local nor cached and the hub cannot be reached."""
    weights = case.model.weights or DEFAULT_WEIGHTS.get(case.model.name)
    if not weights or weights in WEIGHT_NAMES or Path(weights).is_absolute() or not HUB_ID.match(weights):
        return None
    from imgx.hub import cache_only_reason

    if _in_hf_cache(weights):
        return None
    reason = cache_only_reason()
    if reason is None:
        return None
    return (("model", "weights"), f"weights {weights!r} are not in the local Hugging Face cache and {reason}; "
                                  f"run `hf download {weights}` where there is network, or point model.weights at "
                                  "a local folder")


def _in_hf_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with diffusers
        return False
    found = try_to_load_from_cache(repo_id, "model_index.json")
    if isinstance(found, str):
        return True
    found = try_to_load_from_cache(repo_id, "config.json")
    return isinstance(found, str)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``X``, ``X | None`` or ``Annotated[X, ...]``, or ``None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated or origin is typing.Union or origin is types.UnionType:
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def suggest_key(model: type[BaseModel] | None, loc: tuple) -> str:
    """``"; did you mean 'epochs'?"`` for an unknown key at ``loc`` under ``model``, else the keys there."""
    for part in loc[:-1]:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return ""
        model = _model_of(model.model_fields[part].annotation)
    if model is None or not loc:
        return ""
    fields = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), fields, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; keys here: {', '.join(fields)}"
