"""Colorizers of this package's own design, and broken ones for imgx's bad-input tests."""

from __future__ import annotations

import torch
from torch import nn


class TinyColorizer(nn.Module):
    """Gray ``(N, in_channels, H, W)`` → colour ``(N, out_channels, H, W)`` in ``[-1, 1]``: three 3x3 convolutions."""

    def __init__(self, width: int = 8, in_channels: int = 1, out_channels: int = 3):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.GELU(),
                                 nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
                                 nn.Conv2d(width, out_channels, 3, padding=1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class OneChannel(TinyColorizer):
    """Returns one channel where three are expected (wrong shape)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[:, :1]


class IntegerOutput(TinyColorizer):
    """Returns integers (wrong dtype)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).round().long()


class NanAfterTraining(TinyColorizer):
    """Fine on its first call, NaN ever after."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = super().forward(x)
        return out if self.calls == 1 else out * float("nan")


def make_colorizer(width: int = 8) -> nn.Module:
    """A factory function (not a class) returning a colorizer."""
    return TinyColorizer(width=width)


NOT_CALLABLE = 42


def not_a_module() -> str:
    """A factory returning something that is not a module."""
    return "colorizer"
DEFAULT = TinyColorizer(width=4)  # a module instance: imgx trains a copy of it per case
