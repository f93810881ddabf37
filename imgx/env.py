"""Devices, seeding and the environment fingerprint recorded in every run's manifest."""

from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "torchvision", "diffusers", "transformers", "accelerate", "torchmetrics", "numpy",
            "scikit-image", "scikit-learn", "pandas")


def default_cache_dir() -> Path:
    """Where imgx keeps caches (tiny pipelines, feature extractors): ``$IMGX_CACHE``, else ``~/.cache/imgx``."""
    return Path(os.environ.get("IMGX_CACHE", Path.home() / ".cache/imgx"))


def device_unavailable_reason(device: str) -> str | None:
    """Why ``device`` cannot run here, or None when it can."""
    if device == "cpu":
        return None
    import torch

    if not torch.cuda.is_available():
        return "CUDA is not available on this machine (torch.cuda.is_available() is False)"
    if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
        return f"{device} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)"
    return None


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) for one case."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_smi() -> dict[str, str]:
    query = "name,driver_version,clocks.max.sm,clocks.max.mem"
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return {}
    if not out:
        return {}
    name, driver, sm, mem = ([p.strip() for p in out[0].split(",")] + ["", "", "", ""])[:4]
    return {"gpu_driver": driver, "gpu_clock_max_sm": sm, "gpu_clock_max_mem": mem, "gpu_smi_name": name}


def fingerprint(use_cuda: bool | None = None) -> dict[str, Any]:
    """Python, library versions, CPU model and threads, and the GPU, driver and CUDA version when used."""
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "versions": {name: _version(name) for name in PACKAGES},
        "cuda_available": torch.cuda.is_available(),
    }
    if use_cuda is None:
        use_cuda = torch.cuda.is_available()
    if use_cuda and torch.cuda.is_available():
        info.update({"gpu": torch.cuda.get_device_name(0), "gpu_count": torch.cuda.device_count(),
                     "cuda_version": torch.version.cuda, "cudnn_version": torch.backends.cudnn.version()})
        info.update(_nvidia_smi())
    return info


def git_commit(path: str = ".") -> str | None:
    """The git commit of ``path``'s repository, or None outside one."""
    try:
        out = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
