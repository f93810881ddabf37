"""Warnings about a valid suite: settings that are legal but probably not what the author meant.

Unlike the errors of :mod:`imgx.suite.load` they do not stop a run; ``imgx validate`` and ``imgx run`` print them
as ``imgx: warning: FILE:LINE: FIELD: message``.
"""

from __future__ import annotations

from typing import Any

import yaml

from imgx.suite.schema import SWEEP_AXES


def _nested(raw: Any, path: tuple[str, ...]) -> tuple[bool, Any]:
    for part in path:
        if not isinstance(raw, dict) or part not in raw:
            return False, None
        raw = raw[part]
    return True, raw


def suite_warnings(suite) -> list[str]:
    """One line per questionable setting of a validated :class:`imgx.suite.load.Suite`.

    - a sweep axis that overrides a value the same case sets (``inference: {guidance_scale: 7.5}`` and
      ``sweep: {guidance_scale: [5, 10]}``): the sweep wins, the fixed value is never used;
    - ``float16`` on CPU: PyTorch runs it without fast kernels (slower than float32) and diffusers warns about
      it; said once per case entry.
    """
    from imgx.suite import expand
    from imgx.suite.load import _line_of

    try:
        root = yaml.compose(suite.path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):  # validated already; lines are a courtesy
        root = None

    def where(loc: tuple) -> str:
        line = _line_of(root, loc)
        return f"{suite.path}:{line}" if line else str(suite.path)

    out = []
    for i, raw in enumerate(suite.spec.cases):
        if not isinstance(raw, dict):
            continue
        for axis in raw.get("sweep") or {}:
            path = SWEEP_AXES.get(axis)
            if not path or len(path) < 2:
                continue
            present, value = _nested(raw, path)
            if present:
                line = _line_of(root, ("cases", i, *path))
                out.append(f"{where(('cases', i, 'sweep', axis))}: cases[{i}].sweep.{axis}: overrides "
                           f"{'.'.join(path)}: {value!r} set in the same case{f' (line {line})' if line else ''}; "
                           "every sweep point uses the sweep's value, so the fixed one is never used")
    cases = expand(suite)
    warned = set()
    for case in cases:
        index = next((j for j, spec in enumerate(suite.cases) if spec.id == case.base_id), None)
        if case.dtype == "float16" and case.device == "cpu" and case.base_id not in warned:
            warned.add(case.base_id)
            loc = ("cases", index, "model", "dtype") if index is not None else ()
            out.append(f"{where(loc)}: cases[{index}].model.dtype: float16 on cpu ({case.id}): PyTorch has no fast "
                       "float16 kernels on CPU, so it runs slower than float32 and NaN outputs are more likely; use "
                       "float32 (or bfloat16) on CPU, float16 on CUDA")
    return out
