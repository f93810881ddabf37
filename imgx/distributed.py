"""Multi-process runs under ``accelerate launch``: which process this is, and a barrier between them.

Cases are sharded across processes (one GPU each); every case runs whole inside one process, so its
distribution metrics (FID, KID, CLIP) see all of its samples without a gather.
"""

from __future__ import annotations

import os


def process_info() -> tuple[int, int]:
    """``(index, count)`` from the variables ``accelerate launch`` / torchrun set; ``(0, 1)`` otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def local_device(device: str) -> str:
    """Map ``cuda`` to this process's own GPU (``cuda:LOCAL_RANK``) in a multi-process run."""
    if device == "cuda" and process_info()[1] > 1:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return device


def barrier() -> None:
    """Wait for every process (no-op in a single-process run)."""
    if process_info()[1] <= 1:
        return
    from accelerate import PartialState

    PartialState().wait_for_everyone()
