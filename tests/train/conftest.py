"""Fixtures for the training tests: the digits classifier that judges generated digits (built once, cached)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def classifier(_imgx_cache):
    """imgx's default digits classifier (seed 0, trained on the 28x28 digits), as the generate task builds it."""
    from imgx.data.digits import load
    from imgx.metrics.features import DigitsClassifierFeatures
    from imgx.suite.schema import DataSpec

    return DigitsClassifierFeatures.from_data(load(DataSpec(name="digits"), 0, "generate"), seed=0,
                                              cache_dir=_imgx_cache)
