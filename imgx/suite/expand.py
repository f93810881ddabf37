"""Expand a suite's sweeps into cases: the cartesian product, each point with a readable id and a content key."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any

from imgx import __version__
from imgx.data import fingerprint
from imgx.filehash import file_digest, flush, tree_digest
from imgx.suite.load import Suite, _set
from imgx.suite.schema import SWEEP_AXES, CaseSpec, DataSpec

# Axes that change how a case runs but not what it computes; they do not change the derived seed, so that
# CPU and CUDA (or float16 and float32) outputs of the same point can be compared image for image.
_SEED_NEUTRAL = {"device", "dtype", "attention", "compile", "channels_last", "cpu_threads"}
# Inference settings that change how outputs are computed (batched or not), not what they are: not in the key.
_KEY_NEUTRAL = {"batch_sweep", "max_batch"}
_KEY_IF_SET = {"strength"}  # inference keys added later: keyed only when set, so older cases keep their keys


@dataclass
class Case:
    """One runnable point of a suite.

    Attributes:
        id: readable id, ``base[axis=value,...]`` for sweep points, unique within the suite.
        key: content hash of the resolved configuration, the data fingerprint and the imgx version.
        params: the sweep point (axis -> value), in the order the suite lists the axes.
        seed: the seed this case derives from the suite seed; recorded with every result.
    """

    suite: str
    base_id: str
    id: str
    index: int
    task: str
    params: dict[str, Any]
    seed: int
    device: str
    spec: CaseSpec
    key: str
    marks: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def dtype(self) -> str:
        return self.spec.model.dtype if self.task == "edit" else "float32"


def stable_seed(*parts: Any) -> int:
    """A 31-bit seed from ``parts`` joined with ``/``: the same on every machine, Python and run."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def derive_seed(suite_seed: int, base_id: str, seed_param: Any) -> int:
    """A stable 31-bit seed from the suite seed, the case id and the case's own seed setting."""
    return stable_seed(suite_seed, base_id, seed_param)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _memo(memo: dict[str, str], spec: DataSpec) -> str:
    """The data fingerprint of ``spec``, computed once per :func:`expand` (sweep points share their data)."""
    text = spec.model_dump_json()
    if text not in memo:
        memo[text] = fingerprint(spec)
    return memo[text]


def case_inputs(spec: CaseSpec, memo: dict[str, str]) -> dict[str, str]:
    """Digests of the local files a case reads besides ``data:``, by field: ``reference_data`` files and
    folders, a local ``weights`` folder, local files and folders in ``metric_options`` (paths are absolute
    once the suite is loaded; hub ids, ``tiny`` and ``train`` name no local file)."""
    inputs: dict[str, str] = {}
    ref = spec.reference_data
    if ref is not None and (ref.path or ref.root):
        inputs["reference_data"] = _memo(memo, ref)
    candidates = {"model.weights": spec.model.weights}
    for metric, options in sorted(spec.metric_options.items()):
        for key, value in sorted(options.items()):
            candidates[f"metric_options.{metric}.{key}"] = value
    for field_name, value in candidates.items():
        if isinstance(value, str) and os.path.isabs(value) and os.path.exists(value):
            inputs[field_name] = tree_digest(value)
    return inputs


def expand(suite: Suite) -> list[Case]:
    """All cases of a validated suite, in file order, sweep points in row-major order of their axes.

    A case's key hashes its configuration (less the settings that only judge it: gates, regression
    tolerances, ``max_invalid``), its seed, the content of every file it reads and the imgx version.
    """
    cases: list[Case] = []
    memo: dict[str, str] = {}
    for spec in suite.cases:
        axes = dict(spec.sweep)
        if isinstance(spec.device, list):
            axes = {"device": list(spec.device), **axes} if len(spec.device) > 1 else axes
        base = spec.model_dump(exclude={"sweep"})
        if isinstance(spec.device, list):
            base["device"] = spec.device[0]
        names = list(axes)
        for values in itertools.product(*(axes[n] for n in names)):
            params = dict(zip(names, values, strict=True))
            resolved = copy.deepcopy(base)
            for name, value in params.items():
                _set(resolved, SWEEP_AXES[name], value)
            point = CaseSpec.model_validate(resolved)
            case_id = spec.id + ("[" + ",".join(f"{n}={_fmt(v)}" for n, v in params.items()) + "]" if params else "")
            seed = derive_seed(suite.spec.seed, spec.id, point.seed)
            config = point.model_dump(mode="json", exclude={"marks", "gates", "regression", "max_invalid"})
            keyed = {**config, "inference": {k: v for k, v in config["inference"].items() if k not in _KEY_NEUTRAL
                                             and not (k in _KEY_IF_SET and v is None)}}
            if point.model.checkpoint:  # new weights at the same path are a new case, not a resumed one
                keyed["checkpoint_sha256"] = file_digest(point.model.checkpoint)
            keyed_parts = {"config": keyed, "seed": seed, "data": _memo(memo, point.data), "imgx": __version__}
            inputs = case_inputs(point, memo)
            if inputs:  # absent, not empty, where a case reads no other file: those keys stay as they were
                keyed_parts["inputs"] = inputs
            payload = json.dumps(keyed_parts, sort_keys=True)
            marks = tuple(spec.marks) + (("gpu",) if str(point.device).startswith("cuda") else ())
            cases.append(Case(
                suite=suite.name, base_id=spec.id, id=case_id, index=len(cases), task=point.task, params=params,
                seed=seed, device=str(point.device), spec=point, key=hashlib.sha256(payload.encode()).hexdigest()[:16],
                marks=tuple(dict.fromkeys(marks)), config=config,
            ))
    flush()
    return cases
