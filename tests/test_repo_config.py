"""The repository's own configuration: committed baselines match their suites; CI and tox run what they claim."""

import configparser
import hashlib
import json
import re
import subprocess

import pytest

from tests.helpers import ROOT

BASELINES = sorted((ROOT / "suites" / "baselines").glob("*.json"))


@pytest.mark.parametrize("baseline", BASELINES, ids=[p.name for p in BASELINES])
def test_committed_baseline_matches_its_suite_file(baseline):
    provenance = json.loads(baseline.read_text())["provenance"]
    suite = ROOT / provenance["suite_path"]
    assert suite.is_file(), f"{baseline.name}: its suite {provenance['suite_path']} is gone"
    sha = hashlib.sha256(suite.read_bytes()).hexdigest()
    assert provenance["suite_sha256"] == sha, (
        f"{baseline.name} was written from another version of {provenance['suite_path']} "
        f"({provenance['suite_sha256'][:12]} != {sha[:12]}): re-baseline with `pytest {provenance['suite_path']} "
        f"--imgx-baseline {baseline.relative_to(ROOT)} --imgx-update-baseline`")


def test_tox_passes_the_browser_variables_the_tests_read():
    ini = configparser.ConfigParser()
    ini.read(ROOT / "tox.ini")
    passenv = set(ini["testenv"]["passenv"].split())
    assert {"IMGX_REQUIRE_BROWSER", "IMGX_CHROMIUM"} <= passenv
    assert "CHROMIUM" not in passenv  # read by nothing


def test_ci_script_is_valid_bash_and_installs_a_c_compiler_for_the_compile_test():
    script = ROOT / ".ci" / "run"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert "command -v cc" in text and "build-essential" in text


def test_readme_ci_and_tox_run_the_same_fast_tier_command():
    """The README's test command is the one CI runs first and tox's `tests` env runs (with -n auto, whose
    pytest-xdist the install line's `test` extra brings)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = next(x for x in readme.splitlines() if x.startswith("python3 -m venv") and "not slow" in x)
    install, command = re.search(r'pip install -e "\.\[([a-z,]+)\]" && (pytest .*)$', line).groups()
    assert "test" in install.split(",") and "-n auto" in command
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    ini = configparser.ConfigParser()
    ini.read(ROOT / "tox.ini")
    assert ini["testenv:tests"]["commands"].replace(" {posargs}", "") == command
    assert "test" in ini["testenv:tests"]["extras"].replace(",", " ").split()
