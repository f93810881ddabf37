"""Session-wide test setup: offline hub, a private imgx cache, and small suite files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import TINY_COLORIZE, write_suite

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")



@pytest.fixture(scope="session", autouse=True)
def _imgx_cache(tmp_path_factory):
    """Keep caches (tiny pipelines, feature extractors) out of the user's home, shared across the session."""
    cache = tmp_path_factory.mktemp("imgx-cache")
    old = os.environ.get("IMGX_CACHE")
    os.environ["IMGX_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("IMGX_CACHE", None)
    else:
        os.environ["IMGX_CACHE"] = old


@pytest.fixture
def tiny_suite(tmp_path) -> Path:
    """A one-case colorize suite that runs in about a second."""
    return write_suite(tmp_path, TINY_COLORIZE)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` skip, with the reason, where CUDA is absent."""
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: torch.cuda.is_available() is False on this machine")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)
