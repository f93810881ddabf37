"""Session-wide test setup: offline hub, a private imgx cache, and small suite files."""

from __future__ import annotations

import os
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


def pytest_configure(config):
    """Under pytest-xdist (``-n N``), each worker gets its share of the CPU cores for torch: N workers of all the
    cores each would fight over them (subprocesses inherit the share through ``OMP_NUM_THREADS``)."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        import torch

        threads = max(1, len(os.sched_getaffinity(0)) // int(workers))
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def _imgx_cache(tmp_path_factory):
    """Keep caches (tiny pipelines, trained models, feature extractors) out of the user's home, shared across the
    session and by its pytest-xdist workers (a model two workers need trains once: imgx's cache lock).

    ``IMGX_TEST_CACHE=DIR`` uses ``DIR`` instead, kept after the session: ``.ci/run`` gives the quality tier and the
    quickstart's dogfood one cache, so a model both need (the quickstart's edit and text-to-image models) trains once.
    """
    shared = os.environ.get("IMGX_TEST_CACHE")
    if shared:
        Path(shared).mkdir(parents=True, exist_ok=True)
        with private_imgx_cache(Path(shared).resolve()) as cache:
            yield cache
        return
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder = root / "imgx-cache"
    folder.mkdir(exist_ok=True)
    with private_imgx_cache(folder) as cache:
        yield cache


@pytest.fixture
def tiny_suite(tmp_path) -> Path:
    """A one-case colorize suite that runs in about a second."""
    return write_suite(tmp_path, TINY_COLORIZE)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` skip, with the reason, where CUDA is absent."""
    skip_gpu_items_without_cuda(items)
