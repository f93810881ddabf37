"""The suite progress bar: ETA weighted by what each case costs, log lines printed through the bars.

A case's cost is a rough estimate from its spec (images x epochs for training, images x steps for diffusion),
in units where the tasks of one suite compare; the bar counts cost, so a 30-second training case moves it more
than a 3-second sweep point. Cases reused from the ledger are counted as already done (``initial``), so a resume
does not start with an absurd rate.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

# Work of one diffusion step on one image relative to one training image-epoch of the colorizer (32x32), and of
# one GAN image-epoch (generator and discriminator); measured on the quickstart suite, rounded.
_STEP_PER_IMAGE_EPOCH = 250.0
_GAN_PER_IMAGE_EPOCH = 2.5
_DEFAULT_TRAIN_IMAGES = 1000


def _get(obj: Any, *path: str, default: Any = None) -> Any:
    for name in path:
        obj = getattr(obj, name, None) if not isinstance(obj, dict) else obj.get(name)
        if obj is None:
            return default
    return obj


def case_cost(case: Any) -> float:
    """A case's estimated work, for weighting the progress bar (never below 1).

    Diffusion (cases with ``inference.num_inference_steps``): steps x images x prompts x (warm-up + repeats
    calls beyond the outputs, roughly), scaled by pixels. Training (cases with ``train.epochs``): epochs x training
    images, scaled by pixels; GANs count double work. Anything else: 1.
    """
    spec = case.spec
    size = float(_get(spec, "data", "image_size", default=32) or 32)
    steps = _get(spec, "inference", "num_inference_steps")
    if steps and case.task not in ("colorize", "generate"):
        images = int(_get(spec, "data", "count", default=1) or 1) * max(len(_get(spec, "prompts", default=[]) or []), 1)
        calls = images + int(_get(spec, "inference", "warmup", default=0) or 0)
        return max(1.0, steps * calls * _STEP_PER_IMAGE_EPOCH * (size / 64.0) ** 2)
    epochs = _get(spec, "train", "epochs")
    if epochs:
        train = int(_get(spec, "data", "train", default=_DEFAULT_TRAIN_IMAGES) or _DEFAULT_TRAIN_IMAGES)
        factor = _GAN_PER_IMAGE_EPOCH if case.task == "generate" else 1.0
        return max(1.0, epochs * train * factor * (size / 32.0) ** 2)
    return 1.0


class SuiteBar:
    """The suite's bar: cost-weighted, with reused cases counted as done before it starts.

    Args:
        ctx: the run context (its :meth:`progress` decides whether a bar shows at all).
        cases: this process's cases, in run order.
        reused_keys: keys of the cases that will be reused from the ledger.
        desc: the bar's label (the suite name).
    """

    def __init__(self, ctx: Any, cases: list[Any], reused_keys: set[str], desc: str):
        self.costs = {c.key: case_cost(c) for c in cases}
        self.n_cases, self.done = len(cases), sum(1 for c in cases if c.key in reused_keys)
        initial = sum(self.costs[c.key] for c in cases if c.key in reused_keys)
        self.bar = ctx.progress(total=sum(self.costs.values()), initial=initial, desc=desc,
                                bar_format="{l_bar}{bar}| [{elapsed}<{remaining}]{postfix}")
        self._show("")

    def _show(self, case_id: str) -> None:
        self.bar.set_postfix_str(f"{self.done}/{self.n_cases} cases" + (f" · {case_id[:60]}" if case_id else ""))

    def start(self, case: Any) -> None:
        self._show(case.id)

    def finish(self, case: Any, ran: bool) -> None:
        """Count a case; a reused one was counted at the start."""
        if ran:
            self.done += 1
            self.bar.update(self.costs.get(case.key, 1.0))
        self._show("")

    def close(self) -> None:
        self.bar.close()


@contextlib.contextmanager
def logs_through_bars(enabled: bool) -> Iterator[None]:
    """Route the root logger's console output through tqdm while bars show, so no line is glued to a bar."""
    if not enabled:
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(loggers=[logging.getLogger()]):
        yield
