"""The demo third-party package (tests/thirdparty/imgx_demo_models), installed once per session, and helpers."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.models.common import DEMO


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")


def _installed_here() -> bool:
    try:
        dist = importlib.metadata.distribution("imgx-demo-models")
        url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return url.rstrip("/") == DEMO.as_uri()


@pytest.fixture(scope="session")
def demo_models() -> Path:
    """Install the demo package (editable, no deps) into the running environment, once; idempotent.

    Subprocesses (``imgx run``, ``pytest``) see its entry points; this process imports it from its folder.
    """
    if not _installed_here():
        command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(DEMO)]
        # Offline first (the environment's own setuptools); an environment without setuptools builds in isolation.
        if subprocess.run([*command, "--no-build-isolation"], capture_output=True, timeout=300).returncode:
            subprocess.run(command, check=True, capture_output=True, timeout=600)
        importlib.invalidate_caches()
    if str(DEMO) not in sys.path:
        sys.path.insert(0, str(DEMO))
    return DEMO
