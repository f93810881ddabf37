"""Multi-process runs (``accelerate launch``, torchrun): which process this is, and how process 0 waits.

Cases are sharded across processes (one GPU each); every case runs whole inside one process, so its
distribution metrics (FID, KID, CLIP) see all of its samples without a gather.

Process 0 waits for the others through the run directory, not a collective: accelerate reports no
distributed backend on a CPU-only machine, where its barrier returns at once. Each process holds an
exclusive lock on ``OUT/locks/rank<i>/.lock`` while it runs (the OS drops it when the process dies) and
writes ``started`` and ``done`` markers beside it. Process 0 waits until every shard's cases are in the
ledger; a shard whose lock is free, that started in this launch and whose cases are not all in the ledger
has stopped (its ``done`` marker says why when it could write one) and is reported, never silently absent.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Processes of one launch start within seconds of each other; markers older than this before process 0
# started are from an earlier launch on the same --out (a resume) and do not count.
LAUNCH_SLACK_S = 120.0
POLL_S = 0.5


def process_info() -> tuple[int, int]:
    """``(index, count)`` from the variables ``accelerate launch`` / torchrun set; ``(0, 1)`` otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init() -> None:
    """Join the launcher's process group where it has one, so that each process owns its GPU as ``cuda``."""
    if process_info()[1] > 1:
        from datetime import timedelta

        from accelerate import PartialState

        PartialState(timeout=timedelta(hours=72))


def process_started() -> float:
    """This process's start time (epoch seconds), from ``/proc`` where readable, else now."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


def rank_dir(out: Path, index: int) -> Path:
    """``OUT/locks/rank<index>``, created."""
    path = Path(out) / "locks" / f"rank{index}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_marker(path: Path, data: dict[str, Any]) -> None:
    from imgx.results import atomic_write_json

    atomic_write_json(path, {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(), **data})


def mark_started(out: Path, index: int) -> None:
    """Say that process ``index`` of this launch holds its lock (and forget an old ``done``)."""
    folder = rank_dir(out, index)
    (folder / "done").unlink(missing_ok=True)
    _write_marker(folder / "started", {})


def mark_done(out: Path, index: int, ran: int, reused: int, aborted: str | None = None) -> None:
    """Say that process ``index`` has finished its shard (or stopped, with ``aborted`` the reason)."""
    _write_marker(rank_dir(out, index) / "done", {"ran": ran, "reused": reused, "aborted": aborted})


def _read_marker(path: Path, since: float) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and float(data.get("time", 0)) >= since - LAUNCH_SLACK_S else None


def lock_is_held(lock_file: Path) -> bool:
    """Whether a live process holds ``lock_file`` (probed with a shared, non-blocking lock, released at once)."""
    try:
        fh = open(lock_file)  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        fh.close()  # closing drops the probe's lock
    return False


@dataclass
class ShardsOutcome:
    """What the other processes did: their counts, and the shards that stopped before their cases were done."""

    ran: int = 0
    reused: int = 0
    stopped: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)


def wait_for_shards(out: Path, shards: dict[int, list], since: float, log=None,
                    start_timeout: float = 600.0) -> ShardsOutcome:
    """Wait until each shard's cases (``index -> [Case]``) are in the ledger or its process has stopped.

    Args:
        out: the run directory.
        shards: the other processes' shards.
        since: when process 0 started; markers much older are from an earlier launch.
        log: a logger for one line while waiting.
        start_timeout: how long a process may take to start (take its lock) before it counts as never started.
    """
    outcome = ShardsOutcome()
    pending = dict(shards)
    waited = False
    t0 = time.monotonic()
    while pending:
        present = {p.stem for p in (Path(out) / "cases").glob("*.json")}
        for index, cases in list(pending.items()):
            folder = rank_dir(out, index)
            missing = [c for c in cases if c.key not in present]
            done = _read_marker(folder / "done", since)
            if not missing and (done or not lock_is_held(folder / ".lock")):
                # ``done`` carries the counts; a process killed after its last case has none (count as ran).
                outcome.ran += done["ran"] if done else len(cases)
                outcome.reused += done["reused"] if done else 0
                del pending[index]
                continue
            if lock_is_held(folder / ".lock"):
                continue
            started = _read_marker(folder / "started", since)
            if done or started or time.monotonic() - t0 > start_timeout:
                why = (f"stopped: {done['aborted']}" if done and done.get("aborted") else
                       "finished without them" if done else
                       "died (its lock is free)" if started else f"never started within {start_timeout:.0f} s")
                outcome.stopped.append(f"process {index} {why}; {len(missing)} of its cases not run: "
                                       + ", ".join(c.id for c in missing))
                outcome.unfinished += [c.id for c in missing]
                if done:
                    outcome.ran += done["ran"]
                    outcome.reused += done["reused"]
                del pending[index]
        if pending:
            if not waited and log is not None:
                log.info("waiting for process(es) %s to finish their cases", ", ".join(map(str, sorted(pending))))
                waited = True
            time.sleep(POLL_S)
    return outcome
