"""Pixel metrics against scikit-image, the independent implementation."""

import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from imgx.metrics.pixel import mse, psnr, ssim


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(5, 3, 32, 24, generator=g)
    b = (a + 0.08 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    return a, b


def _np(t, i):
    return t[i].permute(1, 2, 0).double().numpy()


def test_mse_and_psnr_match_skimage(pair):
    a, b = pair
    for i in range(len(a)):
        assert mse(a, b)[i].item() == pytest.approx(mean_squared_error(_np(a, i), _np(b, i)), rel=1e-6)
        assert psnr(a, b)[i].item() == pytest.approx(peak_signal_noise_ratio(_np(a, i), _np(b, i), data_range=1.0),
                                                     rel=1e-6)


def test_ssim_matches_skimage(pair):
    a, b = pair
    ours = ssim(a, b).numpy()
    ref = [structural_similarity(_np(a, i), _np(b, i), channel_axis=-1, data_range=1.0, gaussian_weights=True,
                                 sigma=1.5, use_sample_covariance=False) for i in range(len(a))]
    np.testing.assert_allclose(ours, ref, rtol=1e-5)


def test_ssim_uses_the_given_data_range_not_the_batch(pair):
    a, b = pair
    # Dim images (0..0.1) scored with their true range equal the full-range score; with the range inferred
    # wrongly as 1.0, the stabilising constants dominate and SSIM is inflated.
    assert ssim(a * 0.1, b * 0.1, data_range=0.1).numpy() == pytest.approx(ssim(a, b).numpy(), rel=1e-4)
    assert np.all(ssim(a * 0.1, b * 0.1, data_range=1.0).numpy() > ssim(a, b).numpy() + 0.01)


def test_identical_images():
    a = torch.rand(2, 3, 16, 16)
    assert torch.all(ssim(a, a) > 0.999999)
    assert torch.all(mse(a, a) == 0)
    assert torch.all(torch.isinf(psnr(a, a)))


def test_small_or_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="one shape"):
        mse(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))


def test_ssim_matches_skimage_on_near_flat_images():
    """Near-flat images make the variances tiny differences of squares: float32 filtering drifted by ~6e-5 here."""
    g = torch.Generator().manual_seed(0)
    a = (0.7 + 0.004 * torch.rand(4, 3, 32, 32, generator=g)).double()
    b = (a + 0.004 * torch.rand(4, 3, 32, 32, generator=g)).clamp(0, 1)
    ours = ssim(a, b).numpy()
    ref = [structural_similarity(_np(a, i), _np(b, i), channel_axis=-1, data_range=1.0, gaussian_weights=True,
                                 sigma=1.5, use_sample_covariance=False) for i in range(len(a))]
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)
