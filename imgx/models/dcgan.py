"""DCGAN for small grayscale images: noise ``(N, latent_dim)`` → ``(N, C, S, S)`` in ``[-1, 1]``.

The recipe's GAN (28x28x1 digits): a generator that projects standard-normal noise to a ``S/4`` map and
upsamples twice with transposed convolutions (BatchNorm + ReLU, Tanh out), and a discriminator that mirrors
it with strided convolutions (LeakyReLU 0.2) and outputs the probability that an image is real. Weights start
from N(0, 0.02) as in Radford et al. (2016).
"""

from __future__ import annotations

import torch
from torch import nn


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """Noise ``(N, latent_dim)`` → images ``(N, channels, size, size)`` in ``[-1, 1]`` (Tanh)."""

    def __init__(self, latent_dim: int = 100, image_size: int = 28, channels: int = 1, width: int = 32):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"DCGAN image_size must be a multiple of 4, got {image_size}")
        self.latent_dim, self.image_size, self.channels = latent_dim, image_size, channels
        s = image_size // 4
        self.project = nn.Sequential(
            nn.Linear(latent_dim, 2 * width * s * s, bias=False),
            nn.BatchNorm1d(2 * width * s * s),
            nn.ReLU(inplace=True),
            nn.Unflatten(1, (2 * width, s, s)),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(N, latent_dim)`` → ``(N, C, S, S)`` in ``[-1, 1]``."""
        return self.upsample(self.project(z))


class Discriminator(nn.Module):
    """Images ``(N, channels, size, size)`` in ``[-1, 1]`` → probability real ``(N,)``."""

    def __init__(self, image_size: int = 28, channels: int = 1, width: int = 32):
        super().__init__()
        s = image_size // 4
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width * s * s, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores ``(N,)``; training uses these with ``BCEWithLogitsLoss`` (the same BCE, stable)."""
        return self.head(self.features(x)).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probability that each image is real, ``(N,)`` in ``[0, 1]``."""
        return torch.sigmoid(self.logits(x))


class GeneratorSampling:
    """Noise and sampling shared by every GAN imgx trains or scores (needs ``latent_dim``, ``generator``)."""

    def noise(self, n: int, generator: torch.Generator | None = None, device: str | torch.device = "cpu"):
        """Standard-normal noise ``(n, latent_dim)``, drawn on the CPU from ``generator`` for reproducibility."""
        return torch.randn(n, self.latent_dim, generator=generator).to(device)

    @torch.no_grad()
    def sample(self, z: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Generate images for noise ``z`` in eval mode; returns ``(N, C, S, S)`` on the CPU."""
        was_training = self.generator.training
        self.generator.eval()
        device = next(self.generator.parameters()).device
        out = torch.cat([self.generator(z[i:i + batch_size].to(device)).cpu() for i in range(0, len(z), batch_size)])
        self.generator.train(was_training)
        return out


class DCGAN(GeneratorSampling, nn.Module):
    """A generator and its discriminator, built together so that they agree on size and channels.

    Args:
        latent_dim: noise dimension (the recipe's 100).
        image_size: side of the square images, a multiple of 4 (28 for digits and MNIST).
        channels: 1 for grayscale.
        width: channels of the first discriminator / last generator layer.
    """

    def __init__(self, latent_dim: int = 100, image_size: int = 28, channels: int = 1, width: int = 32):
        super().__init__()
        self.latent_dim = latent_dim
        self.generator = Generator(latent_dim, image_size, channels, width)
        self.discriminator = Discriminator(image_size, channels, width)
        self.apply(_init_weights)
