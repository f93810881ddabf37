"""imgx: a benchmark and evaluation harness for image-to-image models.

The public API is what ``__all__`` lists (see the README's "Python API"); everything else may move.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["RunResult", "__version__", "load_run", "run", "score"]

if TYPE_CHECKING:
    from imgx.api import RunResult, load_run, run
    from imgx.scoring import score

# Loaded on first use, so that `import imgx` stays light (no pandas or torch until asked for).
_API = {"run": "imgx.api", "load_run": "imgx.api", "RunResult": "imgx.api", "score": "imgx.scoring"}


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'imgx' has no attribute {name!r}")
