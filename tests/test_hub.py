"""Cache-only decisions: the user's offline flags, and one quick probe of a download host that cannot be reached.

Real sockets on localhost: a port nothing listens on stands for "no network"; a listening socket for a host
that answers. Nothing here leaves the machine.
"""

from __future__ import annotations

import socket
import sys
import textwrap
import time

import pytest

from imgx import hub
from imgx.errors import WeightsError
from imgx.metrics.clip import ClipEmbedder, ClipUnavailable
from imgx.models.instruct_pix2pix import resolve_weights


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_CONNECTS: list[tuple] = []


def _count_connects(event: str, args: tuple) -> None:
    if event == "socket.connect":
        _CONNECTS.append(args[1])


sys.addaudithook(_count_connects)  # audit hooks cannot be removed; this one only appends addresses


def _connects_to(port: int) -> int:
    return sum(1 for address in _CONNECTS if isinstance(address, tuple) and address[1:2] == (port,))


# A child process that counts its own connection attempts to one port (Python's audit events see every
# socket.connect) and prints the count last on stderr, then runs ``python -m imgx`` with the given arguments.
_COUNTING_CHILD = textwrap.dedent("""
    import atexit, runpy, sys
    port, count = int(sys.argv.pop(1)), [0]
    def hook(event, args):
        if event == "socket.connect" and isinstance(args[1], tuple) and args[1][1:2] == (port,):
            count[0] += 1
    sys.addaudithook(hook)
    atexit.register(lambda: print(f"connects={count[0]}", file=sys.stderr))
    sys.argv[0] = "imgx"
    runpy.run_module("imgx", run_name="__main__")
""")


@pytest.fixture
def online(monkeypatch, tmp_path):
    """No offline flag, no proxy, an empty HF cache, and fresh probes."""
    for name in hub.OFFLINE_FLAGS + hub.PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    hub.forget_probes()
    yield monkeypatch
    hub.forget_probes()


@pytest.mark.parametrize("flag", hub.OFFLINE_FLAGS)
def test_each_offline_flag_means_cache_only_and_is_named(online, flag):
    online.setenv(flag, "1")
    assert hub.offline_flag() == flag
    assert hub.cache_only_reason() == f"{flag} is set"


def test_flags_set_to_false_do_not_count(online):
    online.setenv("HF_HUB_OFFLINE", "0")
    online.setenv("IMGX_OFFLINE", "")
    assert hub.offline_flag() is None


def test_an_unreachable_endpoint_is_found_at_once_and_remembered(online):
    port = _closed_port()
    online.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    t0 = time.perf_counter()
    reason = hub.cache_only_reason()
    assert reason is not None and f"127.0.0.1:{port} cannot be reached" in reason
    assert _connects_to(port) == 1
    assert time.perf_counter() - t0 < 10 * hub.PROBE_SECONDS  # a refused connection is not a time-out
    assert hub._unreachable.cache_info().currsize == 1
    assert hub.cache_only_reason() == reason and hub._unreachable.cache_info().hits == 1


def test_a_listening_endpoint_allows_downloads(online):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        online.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert hub.cache_only_reason() is None


def test_behind_a_proxy_the_proxy_decides(online):
    online.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    online.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert hub.cache_only_reason() is None
    assert hub._unreachable.cache_info().currsize == 0  # no probe was made


def test_clip_weights_without_network_are_unavailable_at_once_with_the_reason(online):
    port = _closed_port()
    online.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(ClipUnavailable, match=r"not in the local Hugging Face cache and 127\.0\.0\.1:\d+ cannot be"):
        ClipEmbedder.load("openai/clip-vit-large-patch14")
    assert _connects_to(port) == 1  # the probe alone: huggingface_hub never tried (its retries take ~23 s a file)


def test_pipeline_weights_without_network_are_a_weights_error_with_the_reason(online, tmp_path):
    online.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(WeightsError, match=r"not in the local Hugging Face cache and 127\.0\.0\.1:\d+ cannot be"):
        resolve_weights("timbrooks/instruct-pix2pix", tmp_path)


def test_a_run_without_network_says_why_once_and_does_not_wait(online, tmp_path):
    """The README's situation: no offline flag, no network. CLIP rows are unavailable with the reason; the
    log has no retry chatter and no line printed twice (huggingface_hub's handler and imgx's)."""
    import os
    import subprocess

    from imgx.results import load_run
    from tests.edit.conftest import edit_suite

    port = _closed_port()
    online.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    suite = edit_suite(tmp_path, metrics="[clip_score, latency]")
    proc = subprocess.run([sys.executable, "-c", _COUNTING_CHILD, str(port), "run", str(suite),
                           "--out", str(tmp_path / "run"), "--no-report"],
                          capture_output=True, text=True, env=dict(os.environ), timeout=600)
    assert proc.returncode == 0, proc.stderr
    *log, last = proc.stderr.splitlines()
    assert last == "connects=1", proc.stderr  # one probe per process; no download was attempted, so no retries
    assert "Retrying" not in proc.stderr
    lines = [line.removeprefix("imgx: ") for line in log if line.strip()]
    assert len(lines) == len(set(lines)), proc.stderr
    _, (record,) = load_run(tmp_path / "run")
    rows = [r for r in record["rows"] if r["metric"] == "clip_score"]
    assert rows and all(r["status"] == "unavailable" and "cannot be reached" in r["detail"] for r in rows)
