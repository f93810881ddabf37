"""Multi-process runs under ``accelerate launch``: which process this is, and a barrier between them.

Cases are sharded across processes (one GPU each); every case runs whole inside one process, so its
distribution metrics (FID, KID, CLIP) see all of its samples without a gather.
"""

from __future__ import annotations

import os


def process_info() -> tuple[int, int]:
    """``(index, count)`` from the variables ``accelerate launch`` / torchrun set; ``(0, 1)`` otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _state():
    from datetime import timedelta

    from accelerate import PartialState

    # Shards can differ in length by whole cases, so a rank may wait long at the final barrier.
    return PartialState(timeout=timedelta(hours=72))


def init() -> None:
    """Join the process group (``accelerate launch``); each process then owns its GPU as ``cuda``."""
    if process_info()[1] > 1:
        _state()


def barrier() -> None:
    """Wait for every process (no-op in a single-process run)."""
    if process_info()[1] > 1:
        _state().wait_for_everyone()
