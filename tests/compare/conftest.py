"""Synthetic run directories written with the real ``imgx.results`` helpers (ledger, tables, manifest)."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import pytest

from imgx.results import FORMAT, CaseResult, MetricRow, atomic_write_json, case_record, write_case, write_tables

ENVIRONMENT = {"python": "3.11.7", "platform": "Linux-x86_64", "cpu": "Test CPU", "cpu_count": 2,
               "torch_threads": 2, "versions": {"torch": "2.14.1", "torchvision": "0.29.1"},
               "cuda_available": False}


class _FakeSpec:
    """Just what ``case_record`` reads from a case's spec."""

    def __init__(self, regression: dict[str, str] | None = None):
        self.model = type("M", (), {"name": "encoder-decoder"})()
        self.regression = dict(regression or {})


class SyntheticCase:
    """A stand-in for :class:`imgx.suite.Case` with the attributes ``case_record`` uses."""

    def __init__(self, base_id: str, params: dict[str, Any], index: int, regression: dict[str, str] | None = None):
        self.base_id, self.params, self.index = base_id, params, index
        self.id = base_id + ("[" + ",".join(f"{k}={v}" for k, v in params.items()) + "]" if params else "")
        self.key = f"{index:04d}" + hashlib.sha256(self.id.encode()).hexdigest()[:12]
        self.suite, self.task, self.device, self.dtype = "synthetic", "colorize", "cpu", "float32"
        self.seed = params.get("seed", 0)
        self.config, self.spec = {}, _FakeSpec(regression)


def make_run(folder: Path, cases: list[dict[str, Any]], *, environment: dict | None = None,
             suite_path: str | None = None) -> Path:
    """Write a run directory.

    Args:
        cases: dicts with ``id`` (base id), optional ``params``, ``status``, ``regression`` (the suite's
            tolerances, recorded with the case) and ``rows``: a list of ``MetricRow`` keyword dicts.
    """
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i, spec in enumerate(cases):
        case = SyntheticCase(spec["id"], spec.get("params", {}), i, spec.get("regression"))
        result = CaseResult(status=spec.get("status", "ok"), detail=spec.get("detail", ""),
                            rows=[MetricRow(**r) for r in spec.get("rows", [])])
        record = case_record(case, result, 0.0, 1.0, [])
        write_case(folder, record)
        records.append(record)
    write_tables(folder, records)
    atomic_write_json(folder / "manifest.json", {
        "format": FORMAT, "imgx_version": "0.1.0", "suite": "synthetic", "suite_path": suite_path,
        "suite_sha256": "ab" * 32, "environment": copy.deepcopy(environment or ENVIRONMENT)})
    return folder


def ssim_case(value: float, *, half_width: float | None = None, case_id: str = "colorizer",
              params: dict | None = None, extra: list[dict] | None = None) -> dict[str, Any]:
    """One colorizer case with an ``ssim`` row (and an optional CI of the given half-width)."""
    row = {"metric": "ssim", "value": value, "n": 1024}
    if half_width is not None:
        row.update(ci_low=value - half_width, ci_high=value + half_width)
    return {"id": case_id, "params": params or {}, "rows": [row, *(extra or [])]}


@pytest.fixture
def run_factory(tmp_path):
    """``run_factory(name, cases, **kw)`` -> a run directory under the test's tmp folder."""
    def factory(name: str, cases: list[dict[str, Any]], **kwargs) -> Path:
        return make_run(tmp_path / name, cases, **kwargs)
    return factory
