"""Fixtures for the GAN area: the embedded digits and their classifier, built once per session."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


def digits_spec(**kw):
    """A stand-in for ``DataSpec`` with the fields the digits loader reads."""
    base = {"name": "digits", "image_size": None, "train": None, "test": None, "root": None, "download": False}
    return SimpleNamespace(**{**base, **kw})


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
