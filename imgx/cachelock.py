"""One writer per cache folder across processes: two runs (or test workers, or ranks) that need the same trained
model train it once; the second waits and reuses it.

A ``<folder>.lock`` file beside the folder is held with :mod:`filelock` (the OS drops the lock when a process dies, so
a crashed trainer never blocks the next one).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


@contextmanager
def cache_lock(folder: str | Path) -> Iterator[None]:
    """Hold the exclusive lock of ``folder`` (created beside it); say once when another process holds it."""
    from filelock import FileLock, Timeout

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder.parent / f".{folder.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process that is building %s", folder)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
