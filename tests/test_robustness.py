"""Faults and untrusted content: write errors, newer run directories, bad --out, hostile names."""

import json
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from imgx.errors import RunDirError
from imgx.imageio import safe_name, save_png
from imgx.runner import run_suite
from tests.helpers import TINY_COLORIZE, write_suite

HOSTILE = ["../../etc/passwd", "a/b\\c", "<script>alert(1)</script>", "nul\x00byte", "x" * 5000,
           "日本語のプロンプト", "مرحبا", "", ".", "..", "CON", "make it \"snowy\" & 'cold'"]


def test_hostile_text_never_becomes_a_path(tmp_path):
    folder = tmp_path / "images"
    names = [safe_name("case", text) for text in HOSTILE]
    assert len(set(names)) == len(names)  # distinct inputs never collide
    import numpy as np

    for name in names:
        assert len(name.encode()) <= 255 and "/" not in name and "\\" not in name and "\x00" not in name
        path = save_png(np.zeros((2, 2, 3), np.uint8), folder, name)
        assert path.resolve().parent == folder.resolve()
    assert len(list(folder.iterdir())) == len(HOSTILE)
    with pytest.raises(ValueError, match="unsafe"):
        save_png(np.zeros((2, 2, 3), np.uint8), folder, "../escape.png")


def test_out_that_is_a_file_is_refused(tiny_suite, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(RunDirError, match="exists and is not a directory"):
        run_suite(tiny_suite, target, quiet=True, report=False)


def test_out_inside_the_suites_own_images_is_refused(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    suite = write_suite(tmp_path, f"""
        suite: s
        cases:
          - id: c
            task: colorize
            model: {{name: encoder-decoder}}
            data: {{name: folder, path: "{images}"}}
            metrics: [mse]
        """)
    with pytest.raises(RunDirError, match="inside the data folder"):
        run_suite(suite, images / "run", quiet=True, report=False)


def test_run_directory_from_a_newer_imgx_is_refused(tiny_suite, tmp_path):
    out = tmp_path / "run"
    run_suite(tiny_suite, out, quiet=True, report=False)
    record_path = next((out / "cases").glob("*.json"))
    record = json.loads(record_path.read_text())
    record["format"] = 99
    record_path.write_text(json.dumps(record))
    with pytest.raises(RunDirError, match="newer imgx"):
        run_suite(tiny_suite, out, quiet=True, report=False)
    proc = subprocess.run([sys.executable, "-m", "imgx", "run", str(tiny_suite), "--out", str(out), "-q"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "newer imgx" in proc.stderr and "Traceback" not in proc.stderr


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))


def test_write_errors_keep_the_ledger_consistent(tmp_path):
    """A real write failure (file-size limit, like a full disk): no torn files; the re-run completes."""
    two = TINY_COLORIZE + TINY_COLORIZE.split("cases:\n")[1].replace("id: colorizer", "id: second").replace(
        "image_size: 16", "image_size: 32")
    suite = write_suite(tmp_path, two)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "imgx", "run", str(suite), "--out", str(out), "-q", "--no-report"],
                          capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    for path in (out / "cases").glob("*.json"):
        json.loads(path.read_text())  # every ledger file that exists is whole
    assert not list(Path(out).rglob(".*.tmp"))
    summary = run_suite(suite, out, quiet=True, report=False)
    assert [r["status"] for r in summary.records] == ["ok", "ok"]


def test_second_process_on_the_same_out_is_refused(tmp_path):
    slow = TINY_COLORIZE.replace("train: 512", "train: 4096").replace("epochs: 2", "epochs: 30")
    suite = write_suite(tmp_path, slow)
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "imgx", "run", str(suite), "--out", str(out), "-q",
                              "--no-report"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = out / ".lock"
        import time

        deadline = time.time() + 120
        while time.time() < deadline and not (lock.exists() and lock.read_text().strip()):
            time.sleep(0.05)
        second = subprocess.run([sys.executable, "-m", "imgx", "run", str(suite), "--out", str(out), "-q"],
                                capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first run ended before the second started; make it longer"
        assert second.returncode == 2
        assert f"another imgx run is writing here (pid {first.pid})" in second.stderr
    finally:
        first.kill()
        first.wait()
