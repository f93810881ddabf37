"""FID and KID against independent implementations: scipy's sqrtm, torchmetrics' FID and KID."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from imgx.metrics.frechet import (
    FewSamplesWarning,
    RankDeficientWarning,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    frechet_distance_of_samples,
    kid_from_features,
    kid_subset_size,
)
from tests.helpers import scipy_fid


def two_sets(n=600, d=32, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / math.sqrt(d) + np.eye(d)
    real = rng.normal(size=(n, d)) @ mix
    fake = (rng.normal(size=(n, d)) * 1.2 + 0.3) @ mix
    return real, fake


class Identity(torch.nn.Module):
    """Features in, features out: feeds torchmetrics the very features imgx scores."""

    def __init__(self, d: int):
        super().__init__()
        self.num_features = d

    def forward(self, x):
        return x


def test_identical_sets_score_zero():
    real, fake = two_sets()
    r = fid_from_features(real, real.copy())
    assert abs(r.value) < 1e-8 * np.trace(np.cov(real.T))
    assert fid_from_features(real, fake).value > 1.0
    # KID is unbiased: two independent draws of one distribution score 0 within the interval, distinct ones not.
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(600, 32)), rng.normal(size=(600, 32))
    same = kid_from_features(a, b)
    assert same.ci_low < 0 < same.ci_high
    assert kid_from_features(a, b + 0.5).ci_low > same.ci_high


@pytest.mark.parametrize("d", [16, 128])
def test_matches_scipy_sqrtm_reference(d):
    real, fake = two_sets(n=4 * d + 100, d=d, seed=d)
    stats = (*feature_statistics(real), *feature_statistics(fake))
    ours, ref = frechet_distance(*stats), scipy_fid(*stats)
    assert ours > 0.1
    assert ours == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize(("n", "m", "d"), [(60, 90, 128), (90, 60, 128), (300, 250, 32)])
def test_sample_space_fid_equals_the_covariance_form(n, m, d):
    """fid_from_features scores fewer samples than dimensions through the N x M cross-product: the same FID as the
    D x D covariances give (and, with samples to spare, as torchmetrics), to round-off."""
    real, fake = two_sets(n=max(n, m), d=d, seed=n + d)
    real, fake = real[:n], fake[:m]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        reference = frechet_distance(*feature_statistics(real), *feature_statistics(fake))
        value, rank = frechet_distance_of_samples(real, fake)
        assert fid_from_features(real, fake).value == pytest.approx(reference, rel=1e-7)
    assert value == pytest.approx(reference, rel=1e-7) and value > 1.0
    assert rank == min(n - 1, m - 1, d)


def test_rank_deficient_statistics_stay_finite_and_warn():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(20, 64)), rng.normal(size=(25, 64)) + 0.5
    with pytest.warns(RankDeficientWarning, match="rank 19 of 64"):
        value = frechet_distance(*feature_statistics(real), *feature_statistics(fake))
    assert math.isfinite(value) and value > 0
    with pytest.warns(UserWarning, match="fewer samples|rank-deficient") as record:
        r = fid_from_features(real, fake, bootstrap=5)
    assert {FewSamplesWarning, RankDeficientWarning} <= {w.category for w in record}
    assert math.isfinite(r.value) and math.isfinite(r.ci_low) and math.isfinite(r.ci_high)
    assert any("rank-deficient" in w for w in r.warnings) and any("fewer samples" in w for w in r.warnings)
    with pytest.warns(FewSamplesWarning):
        assert math.isfinite(kid_from_features(real, fake, subsets=3).value)


def test_matches_torchmetrics_fid_on_the_same_features():
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, fake = two_sets(n=500, d=48, seed=3)
    tm = FrechetInceptionDistance(feature=Identity(48), normalize=True)
    tm.update(torch.from_numpy(real), real=True)
    tm.update(torch.from_numpy(fake), real=False)
    expected = float(tm.compute())
    assert fid_from_features(real, fake).value == pytest.approx(expected, rel=1e-6)


def test_matches_torchmetrics_kid_with_the_same_subsets():
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = two_sets(n=300, d=24, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features in buffer"
        tm = KernelInceptionDistance(feature=Identity(24), subsets=20, subset_size=100)
    tm.update(torch.from_numpy(real), real=True)
    tm.update(torch.from_numpy(fake), real=False)
    torch.manual_seed(123)  # torchmetrics draws its subsets from the global generator
    mean, std = (float(v) for v in tm.compute())
    ours = kid_from_features(real, fake, subsets=20, subset_size=100, seed=123)
    assert ours.value == pytest.approx(mean, rel=1e-6)
    assert ours.std == pytest.approx(std, rel=1e-6)
    assert ours.ci_low <= ours.value <= ours.ci_high


def test_refuses_fewer_than_two_samples_per_side():
    real, fake = two_sets(n=10, d=4)
    with pytest.raises(ValueError, match=r"at least 2 samples per side.*real=1, fake=10"):
        fid_from_features(real[:1], fake)
    with pytest.raises(ValueError, match=r"at least 2 samples per side.*real=10, fake=1"):
        kid_from_features(real, fake[:1])


def test_refuses_malformed_statistics():
    mu, s = np.zeros(3), np.eye(3)
    with pytest.raises(ValueError, match="same shape"):
        frechet_distance(mu, s, np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(mu, s, mu, np.full((3, 3), np.nan))


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded():
    real, fake = two_sets(n=800, d=8, seed=5)
    a = fid_from_features(real, fake, bootstrap=60, seed=7)
    b = fid_from_features(real, fake, bootstrap=60, seed=7)
    c = fid_from_features(real, fake, bootstrap=60, seed=8)
    assert a.ci_low < a.value < a.ci_high
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)
    assert math.isnan(fid_from_features(real, fake).ci_low)  # no bootstrap asked, none claimed


def test_kid_subset_size_adapts_to_sample_count():
    assert kid_subset_size(5000, 4000) == 1000  # torch-fidelity's default when there are plenty
    assert kid_subset_size(359, 500) == 179  # half the smaller side, so that subsets differ
    assert kid_subset_size(3, 3) == 3
    real, fake = two_sets(n=40, d=4)
    r = kid_from_features(real, fake, subsets=10)
    assert r.subset_size == 20 and r.ci_low < r.ci_high
    with pytest.raises(ValueError, match="subset size"):
        kid_from_features(real, fake, subset_size=41)


def test_kid_refuses_fewer_than_its_minimum_per_side():
    from imgx.metrics.frechet import KID_MIN_SAMPLES, KidTooFewSamples

    real, fake = two_sets(n=10, d=2)
    with pytest.raises(KidTooFewSamples, match=rf"at least {KID_MIN_SAMPLES} samples per side.*real=3, fake=10"):
        kid_from_features(real[:3], fake)
    r = kid_from_features(real[:KID_MIN_SAMPLES], fake[:KID_MIN_SAMPLES], subsets=20)
    assert r.subset_size == 2 and r.std > 0  # subsets differ: the spread means something


def test_kid_below_the_minimum_is_an_unavailable_row():
    from imgx.metrics.features import FeatureExtractor
    from imgx.tasks.generate import _score

    real, fake = two_sets(n=10, d=2)
    row, _ = _score("kid", FeatureExtractor(), real[:3], fake[:3], "", {}, seed=0)
    assert row.status == "unavailable" and row.value is None and "at least 4 samples per side" in row.detail
