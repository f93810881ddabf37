"""Benchmarks (pytest-benchmark): each speed goal is a ratio to a baseline measured in the same process.

Run them all with ``pytest bench --benchmark-autosave`` (JSON under ``.benchmarks/``, readable by
``pytest-benchmark compare``); see bench/README.md.
"""

from __future__ import annotations

import pytest

from tests.helpers import private_imgx_cache, set_offline_environment, skip_gpu_items_without_cuda

set_offline_environment()


@pytest.fixture(scope="session", autouse=True)
def _imgx_cache(tmp_path_factory):
    """Benchmarks never read or fill the user's imgx cache: a cached result would time the cache."""
    with private_imgx_cache(tmp_path_factory.mktemp("imgx-cache")) as cache:
        yield cache


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record what the numbers depend on beside the CPU: library versions, threads, the GPU."""
    import torch

    from imgx import __version__

    machine_info["imgx"] = {
        "version": __version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def pytest_collection_modifyitems(config, items):
    """Benchmarks marked ``gpu`` skip, with the reason, where CUDA is absent."""
    skip_gpu_items_without_cuda(items)
