"""Fixtures for the GAN area: the embedded digits and their classifier, built once per session."""

from __future__ import annotations

import pytest


def digits_spec(**kw):
    """A ``DataSpec`` for the digits (``name`` may be overridden, e.g. for the torchvision loaders)."""
    from imgx.suite.schema import DataSpec

    return DataSpec(**{"name": "digits", **kw})


@pytest.fixture(scope="session")
def digits():
    """The full digits split at 28x28 (1438 train / 359 test)."""
    from imgx.data.digits import load

    return load(digits_spec(), 0, "generate")


@pytest.fixture(scope="session")
def classifier(digits, _imgx_cache):
    """The default digits classifier (seed 0), cached in the session cache the task tests share."""
    from imgx.metrics.features import DigitsClassifierFeatures

    return DigitsClassifierFeatures.from_data(digits, seed=0, cache_dir=_imgx_cache)
