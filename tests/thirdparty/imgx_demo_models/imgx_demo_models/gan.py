"""A GAN of this package's design: a two-layer MLP generator and a small convolutional discriminator."""

from __future__ import annotations

import torch
from torch import nn


class _Discriminator(nn.Module):
    def __init__(self, image_size: int, channels: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, 8, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
                                 nn.Flatten(), nn.Linear(8 * (image_size // 2) ** 2, 1))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


class TinyGan(nn.Module):
    """Noise ``(N, latent_dim)`` → ``(N, channels, image_size, image_size)`` in ``[-1, 1]``."""

    def __init__(self, latent_dim: int = 16, image_size: int = 28, channels: int = 1, hidden: int = 64):
        super().__init__()
        self.latent_dim = latent_dim
        self.generator = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(),
                                       nn.Linear(hidden, channels * image_size * image_size), nn.Tanh(),
                                       nn.Unflatten(1, (channels, image_size, image_size)))
        self.discriminator = _Discriminator(image_size, channels)
