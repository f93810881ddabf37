"""Full-reference pixel metrics: MSE, PSNR and SSIM, per image, always with an explicit data range.

Inputs are ``(N, C, H, W)`` float tensors in ``[0, data_range]``; each function returns ``(N,)`` float64.
SSIM follows ``skimage.metrics.structural_similarity(gaussian_weights=True, use_sample_covariance=False)`` exactly
(torchmetrics' SSIM pads the borders differently and differs by ~1e-3 on 32x32 crops), in float64 like skimage:
float32 filtering drifts by up to 6e-5 on near-flat images, where the variances are tiny differences of squares.
"""

from __future__ import annotations

import torch


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"expected two (N, C, H, W) tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image: ``(N,)``."""
    _check(a, b)
    return (a.double() - b.double()).pow(2).flatten(1).mean(1)


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image: ``(N,)``; identical images give ``inf``."""
    err = mse(a, b)
    return 10.0 * torch.log10(torch.as_tensor(data_range, dtype=torch.float64) ** 2 / err)


def _gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)  # 5 for sigma 1.5: an 11-pixel window, as skimage
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity per image: ``(N,)``, the mean over channels and valid window positions.

    Same definition and border convention as ``skimage.metrics.structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)``: separable Gaussian filtering, then only the positions whose
    whole window lies inside the image. Images smaller than the 11-pixel window are refused.
    """
    _check(a, b)
    w = _gaussian_window()
    if min(a.shape[-2:]) < len(w):
        raise ValueError(f"SSIM needs images of at least {len(w)}x{len(w)} pixels, got {tuple(a.shape[-2:])}")
    n, c, h, wd = a.shape
    x = a.double().reshape(n * c, 1, h, wd)
    y = b.double().reshape(n * c, 1, h, wd)
    kh, kw = w.view(1, 1, -1, 1).to(x.device), w.view(1, 1, 1, -1).to(x.device)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(torch.nn.functional.conv2d(t, kh), kw)

    stacked = blur(torch.cat([x, y, x * x, y * y, x * y]))
    ux, uy, uxx, uyy, uxy = stacked.chunk(5)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.reshape(n, -1).mean(1)


PIXEL_METRICS = {"mse": mse, "psnr": psnr, "ssim": ssim}
