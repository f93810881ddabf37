"""Fixtures for the report tests: synthetic run directories (written file by file) and their reports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.report.fixtures import make_run


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory) -> Path:
    """A complete run directory: colorize, generate, an edit sweep with skipped CUDA cases, a failed case."""
    return make_run(tmp_path_factory.mktemp("run") / "run")


@pytest.fixture(scope="session")
def synthetic_report(synthetic_run) -> tuple[Path, str]:
    """``report.html`` of :func:`synthetic_run` and its text."""
    from imgx.report import write_report

    path = write_report(synthetic_run)
    return path, path.read_text(encoding="utf-8")


@pytest.fixture
def artifacts_dir(tmp_path) -> Path:
    """Where tests keep files for a person to look at: ``$IMGX_TEST_ARTIFACTS`` (CI uploads it) or tmp_path."""
    folder = Path(os.environ.get("IMGX_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
