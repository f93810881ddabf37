"""Session-wide test setup: offline hub, a private imgx cache, and small suite files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import (
    TINY_COLORIZE,
    private_imgx_cache,
    set_offline_environment,
    skip_gpu_items_without_cuda,
    write_suite,
)

set_offline_environment()


@pytest.fixture(scope="session", autouse=True)
def _imgx_cache(tmp_path_factory):
    """Keep caches (tiny pipelines, feature extractors) out of the user's home, shared across the session."""
    with private_imgx_cache(tmp_path_factory.mktemp("imgx-cache")) as cache:
        yield cache


@pytest.fixture
def tiny_suite(tmp_path) -> Path:
    """A one-case colorize suite that runs in about a second."""
    return write_suite(tmp_path, TINY_COLORIZE)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` skip, with the reason, where CUDA is absent."""
    skip_gpu_items_without_cuda(items)
