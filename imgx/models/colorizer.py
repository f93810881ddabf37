"""Colorizers: grayscale ``(N, 1, 32, 32)`` in ``[-1, 1]`` to colour ``(N, 3, 32, 32)`` in ``[-1, 1]``.

``EncoderDecoder`` is exactly the recipe (shared/seeds/003): Conv2d 1→32→64 with stride 2 (32x32 → 8x8
latent), ConvTranspose2d 64→32→3 with stride 2, Tanh. ``UNetColorizer`` adds skip connections.
"""

from __future__ import annotations

import torch
from torch import nn


class EncoderDecoder(nn.Module):
    """The recipe's CNN encoder-decoder colorizer."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(32, 3, 3, stride=2, padding=1, output_padding=1), nn.Tanh(),
        )

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        """``(N, 1, H, W)`` → ``(N, 3, H, W)``, H and W divisible by 4."""
        return self.decoder(self.encoder(gray))


class UNetColorizer(nn.Module):
    """The same encoder and decoder with U-Net skip connections (encoder features and the input)."""

    def __init__(self):
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(1, 32, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.enc2 = nn.Sequential(nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.dec2 = nn.Sequential(nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1),
                                  nn.ReLU(inplace=True))
        self.dec1 = nn.Sequential(nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1),
                                  nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Conv2d(33, 3, 3, padding=1), nn.Tanh())

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        """``(N, 1, H, W)`` → ``(N, 3, H, W)``, H and W divisible by 4."""
        e1 = self.enc1(gray)
        e2 = self.enc2(e1)
        d2 = self.dec2(e2)
        d1 = self.dec1(torch.cat([d2, e1], dim=1))
        return self.head(torch.cat([d1, gray], dim=1))
