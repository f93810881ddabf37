"""What a terminal and a CI log show: the end-of-run table, one line per case, colour only on a terminal.

The subprocess tests run the real ``imgx`` command twice: with pipes (a CI log) and inside a pseudo-terminal.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from imgx.console import headline_metric, progress_line, results_table, short_id, use_color
from tests.helpers import ROOT, write_suite

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _record(case_id, task, rows, *, metrics, gates=(), status="ok", seconds=12.3, detail=""):
    return {"case_id": case_id, "task": task, "status": status, "seconds": seconds, "detail": detail,
            "config": {"metrics": list(metrics)},
            "gates": [{"metric": m, "op": op, "bound": b, "passed": p} for m, op, b, p in gates],
            "rows": [{"metric": m, "value": v, "unit": u, "reference": ref, "status": st}
                     for m, v, u, ref, st in rows]}


RECORDS = [
    _record("colorizer", "colorize", [("mse", 0.03, "", "", "ok"), ("psnr", 14.6, "dB", "", "ok"),
                                      ("psnr", 24.7, "dB", "gray-copy", "ok")],
            metrics=["mse", "psnr"], gates=[("psnr", ">=", 18.5, False)]),
    _record("dcgan", "generate", [("fid", 150.2, "", "", "ok"), ("fid", 7301.0, "", "untrained", "ok"),
                                  ("fid", 21.9, "", "real-split", "ok")],
            metrics=["fid", "kid"], gates=[("fid", "<=", 1000.0, True)]),
    _record("edit[image_guidance_scale=1.5,scheduler=ddim]", "edit",
            [("clip_score", None, "", "", "unavailable"), ("ssim", 0.41, "", "", "ok"),
             ("latency_ms_p50", 931.0, "ms", "", "ok")],
            metrics=["clip_score", "ssim", "latency"]),
    _record("broken", "colorize", [], metrics=["ssim"], status="failed", detail="RuntimeError: boom\ntraceback"),
]


def test_headline_is_chosen_from_the_metric_metadata():
    assert headline_metric(RECORDS[0]) == "psnr"  # gated first
    assert headline_metric(RECORDS[1]) == "fid"
    assert headline_metric(RECORDS[2]) == "ssim"  # the first requested quality metric with a value
    # A task this module has never heard of gets a headline too: its first requested quality metric.
    new_task = _record("t2i", "text-to-image", [("latency_ms_p50", 40.0, "ms", "", "ok"),
                                                ("clip_score", 28.0, "", "", "ok"), ("fid", 90.0, "", "", "ok")],
                       metrics=["latency", "clip_score", "fid"])
    assert headline_metric(new_task) == "clip_score"


def test_plain_table_for_a_log():
    text = results_table(RECORDS)
    assert not ANSI.search(text)
    lines = text.splitlines()
    assert lines[0].split() == ["case", "status", "time", "metric", "value", "gray-copy", "untrained", "real-split",
                                "p50", "ms", "gates"]
    colorizer = next(line for line in lines if line.startswith("colorizer"))
    # Worse than its gray-copy reference: marked, and the mark is explained.
    assert "14.60*" in colorizer and "24.70" in colorizer and "FAIL psnr >= 18.5" in colorizer
    assert any(line.startswith("* worse than a trivial reference") for line in lines)
    dcgan = next(line for line in lines if line.startswith("dcgan"))
    assert "150.2" in dcgan and "7301" in dcgan and "21.90" in dcgan and "1 passed" in dcgan and "*" not in dcgan
    assert "edit[image_guidance_scale=1.5,scheduler=ddim]" in text and "931.0" in text  # a log is never cut
    assert re.search(r"^broken\s+failed", text, re.M)


def test_terminal_table_fits_the_width_and_uses_colour(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    text = results_table(RECORDS, color=True, width=100)
    assert "\x1b[33m14.60*" in text and "\x1b[31mFAIL" in text  # amber for worse-than-reference, red for a gate
    plain = ANSI.sub("", text)
    assert all(len(line) <= 100 for line in plain.splitlines()[:-1])  # the footnote is prose, it may wrap
    assert "edit[1.5,ddim]" in plain  # sweep points keep their values, drop the axis names
    assert short_id("edit[a=1,b=x]") == "edit[1,x]" and short_id("plain") == "plain"


def test_no_color_is_honoured(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_color(isatty=True) is False
    monkeypatch.delenv("NO_COLOR")
    assert use_color(isatty=True) is True and use_color(io.StringIO()) is False


def test_one_line_per_case():
    assert progress_line(RECORDS[0]) == ("colorizer ok 12.3s psnr 14.60 dB (gray-copy 24.70) worse than gray-copy "
                                         "gate failed: psnr >= 18.5")
    assert progress_line(RECORDS[2]).endswith("ok 12.3s ssim 0.4100 p50 931.0 ms")
    assert progress_line(RECORDS[3]) == "broken failed 12.3s - RuntimeError: boom"
    assert progress_line(RECORDS[1], reused=True) == "dcgan reused fid 150.2 (untrained 7301, real-split 21.90)"


def test_resume_bar_counts_reused_cases_as_done_and_weights_by_cost(tmp_path):
    """The suite bar: a training case weighs more than a sweep point; reused work is ``initial``, not rate."""
    from tqdm import tqdm

    from imgx.progress import SuiteBar, case_cost
    from imgx.suite import expand, load_suite

    suite = write_suite(tmp_path, """
        suite: costs
        cases:
          - id: colorizer
            task: colorize
            model: {name: encoder-decoder}
            data: {name: photos, image_size: 32, train: 8192, test: 1024}
            train: {epochs: 10}
            metrics: [ssim]
          - id: edit
            task: edit
            model: {name: instruct-pix2pix, weights: tiny}
            data: {name: photos, image_size: 64, count: 2}
            prompts: ["a", "b"]
            inference: {num_inference_steps: 10}
            sweep: {num_inference_steps: [10, 40]}
            metrics: [ssim]
        """)
    cases = expand(load_suite(suite))
    colorizer, edit10, edit40 = cases
    assert case_cost(colorizer) > case_cost(edit40) > case_cost(edit10) > 1
    assert case_cost(edit40) == pytest.approx(4 * case_cost(edit10), rel=0.2)

    class Ctx:
        @staticmethod
        def progress(**kwargs):
            return tqdm(file=io.StringIO(), **kwargs)

    bar = SuiteBar(Ctx(), cases, {colorizer.key}, "costs")
    assert bar.bar.n == bar.bar.format_dict["initial"] == case_cost(colorizer)  # reused: done, not rate
    bar.finish(edit10, ran=True)
    assert bar.bar.n - bar.bar.format_dict["initial"] == case_cost(edit10)
    assert bar.done == 2 and "2/3 cases" in str(bar.bar.postfix)
    bar.close()


# ------------------------------------------------------------------------------------------ real subprocesses
SUITE = """
    suite: console
    seed: 0
    cases:
      - id: colorizer
        task: colorize
        model: {name: encoder-decoder}
        data: {name: photos, image_size: 16, train: 128, test: 32}
        train: {epochs: 1, batch_size: 32}
        metrics: [mse, psnr, ssim]
        gates: {ssim: ">= 0.0"}
    """


def _env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "CI")}
    env.update(PYTHONPATH=str(ROOT), TERM="xterm", **extra)
    return env


def _run_in_pty(args: list[str], env: dict[str, str], cols: int = 120, timeout: float = 300) -> tuple[int, str]:
    """Run a command with stdin/stdout/stderr on a pseudo-terminal of ``cols`` columns; returns (rc, output)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
    proc = subprocess.Popen(args, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def test_run_in_a_log_and_in_a_terminal(tmp_path):
    suite = write_suite(tmp_path, SUITE)
    out = tmp_path / "run"
    imgx = [sys.executable, "-m", "imgx", "run", str(suite), "--out", str(out), "--no-report"]
    # A CI log: pipes, no terminal. One line per case as it ends, the plain table, no ANSI anywhere.
    log = subprocess.run(imgx, capture_output=True, text=True, env=_env(), timeout=300)
    assert log.returncode == 0, log.stderr
    assert not ANSI.search(log.stdout + log.stderr)
    assert re.search(r"^imgx: colorizer ok \d+\.\ds ssim 0\.\d+ \(gray-copy 0\.\d+\)", log.stderr, re.M)
    assert re.search(r"^case\s+status\s+time\s+metric\s+value\s+gray-copy\s+gates$", log.stdout, re.M)
    assert re.search(r"^colorizer\s+ok\s+\d+\.\ds\s+ssim\s+0\.\d+\*?\s+0\.\d+\s+1 passed$", log.stdout, re.M)
    assert log.stdout.splitlines()[-1] == f"imgx: {out}: 1 ok (ran 1, reused 0)"
    # --quiet: the verdict line only.
    quiet = subprocess.run([*imgx, "--quiet"], capture_output=True, text=True, env=_env(), timeout=300)
    assert quiet.stdout == f"imgx: {out}: 1 ok (ran 0, reused 1)\n" and quiet.stderr == ""
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["reused_cases"] == ["colorizer"] and manifest["reused"] == 1
    # A terminal (resuming): the bar is drawn, log lines go through it, the table is coloured and marks reuse.
    rc, screen = _run_in_pty(imgx, _env(), cols=100)
    assert rc == 0, screen
    assert "\x1b[1mcase" in screen and "\x1b[32mok" in screen
    assert "console: 100%" in screen and "1/1 cases" in screen
    assert "it/s" not in screen and "case/s" not in screen  # no rate from reused work
    lines = [line.split("\r")[-1] for line in ANSI.sub("", screen).replace("\r\n", "\n").split("\n")]
    table = [line for line in lines if line.startswith(("case ", "colorizer "))]
    assert len(table) == 2 and "reused" in table[1]
    # Log lines print through the bar: each starts its own line, none is glued to a bar.
    assert any(line.startswith("imgx: colorizer reused ssim") for line in lines)
    assert not re.search(r"\][^\r\n]*imgx: ", ANSI.sub("", screen))
    assert all(len(line) <= 100 for line in table)
    # NO_COLOR in a terminal: the same table without colour.
    rc, screen = _run_in_pty(imgx, _env(NO_COLOR="1"), cols=100)
    assert rc == 0 and "\x1b[1mcase" not in screen and "\x1b[32m" not in screen
    assert re.search(r"^case\s+status", screen.replace("\r", "\n"), re.M)
