"""The manifest records the git commit of the suite's own project beside imgx's."""

from __future__ import annotations

import shutil
import subprocess

from imgx.runner import write_manifest
from imgx.suite import load_suite
from tests.helpers import ROOT


def test_manifest_records_the_suite_folders_git_commit(tmp_path):
    suite = load_suite(ROOT / "suites" / "quickstart.yaml")
    manifest = write_manifest(tmp_path, suite, ["test"], "now", None, {})
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert manifest["suite_git_commit"] == head and len(head) == 40
    # A suite outside any repository: recorded as unknown, not as imgx's commit.
    outside = tmp_path / "project"
    outside.mkdir()
    shutil.copy(ROOT / "suites" / "quickstart.yaml", outside / "s.yaml")
    manifest = write_manifest(tmp_path, load_suite(outside / "s.yaml"), ["test"], "now", None, {})
    assert manifest["suite_git_commit"] is None
