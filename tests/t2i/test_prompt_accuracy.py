"""prompt_accuracy: which prompts name a class, and the metric on known inputs (real digits)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imgx.metrics.prompt import digit_class, prompt_accuracy


@pytest.mark.parametrize(("prompt", "expected"), [
    ("a handwritten digit 7", 7), ("the number seven", 7), ("Handwritten 0", 0), ("digit 3, neatly", 3),
    ("a red apple", None), ("7", None), ("a digit 3 or 4", None), ("2 cats", None), ("digit 12", None),
])
def test_digit_class(prompt, expected):
    assert digit_class(prompt) == expected


def test_prompt_accuracy_on_real_digits_is_high_and_on_wrong_prompts_low():
    """Real held-out digits prompted with their own class score high; prompted with another class, low."""
    from imgx.data.digits import load
    from imgx.metrics.features import DigitsClassifierFeatures
    from imgx.suite.schema import DataSpec

    data = load(DataSpec(name="digits"), 0, "generate")
    ex = DigitsClassifierFeatures.from_data(data, seed=0, cache_dir=Path(os.environ["IMGX_CACHE"]))
    pred = ex.classify(data["test"]).numpy()
    labels = data["test_labels"].numpy()
    right, low, high, n = prompt_accuracy(pred, labels, seed=0)
    wrong, *_ = prompt_accuracy(pred, (labels + 1) % 10, seed=0)
    assert right > 0.9 and low <= right <= high and n == len(labels)
    assert wrong < 0.1
    with pytest.raises(ValueError, match="at least one image"):
        prompt_accuracy([], [])
