"""``prompt_accuracy``: does a text-to-image model draw the class its prompt names?

For prompts that name a class of a domain imgx has a classifier for (handwritten digits today, judged by the
``digits-classifier`` of :mod:`imgx.metrics.features`), the metric is the fraction of images the classifier
assigns to the prompted class, with a percentile-bootstrap interval over images. A prompt names a digit class
when it says ``digit``, ``number``, ``numeral`` or ``handwritten`` and exactly one class, as a numeral
(``"a handwritten digit 7"``) or a word (``"the number seven"``); any other prompt names no known class.
"""

from __future__ import annotations

import re

import numpy as np

from imgx.metrics.stats import mean_with_ci

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DOMAIN_WORDS = ("digit", "number", "numeral", "handwritten")
_TOKENS = re.compile(r"[a-z]+|\d+")


def digit_class(prompt: str) -> int | None:
    """The digit class a prompt names (``0``..``9``), or None when it names none or more than one."""
    tokens = _TOKENS.findall(prompt.lower())
    if not any(t.startswith(DOMAIN_WORDS) for t in tokens):
        return None
    named = {int(t) for t in tokens if t.isdigit() and len(t) == 1} | {WORDS.index(t) for t in tokens if t in WORDS}
    return named.pop() if len(named) == 1 else None


def prompt_accuracy(predicted, target, *, seed: int = 0) -> tuple[float, float, float, int]:
    """Share of images whose predicted class is the prompted one: ``(mean, ci_low, ci_high, n)``.

    Args:
        predicted: ``(N,)`` predicted classes.
        target: ``(N,)`` prompted classes.
        seed: bootstrap seed.
    """
    correct = (np.asarray(predicted).ravel() == np.asarray(target).ravel()).astype(np.float64)
    if correct.size == 0:
        raise ValueError("prompt_accuracy needs at least one image")
    return mean_with_ci(correct, seed=seed)
