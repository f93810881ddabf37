"""CycleGAN (Zhu et al., 2017): two ResNet generators (A→B, B→A) and two PatchGAN discriminators.

Generator: reflection-padded 7x7 convolution, two stride-2 3x3 convolutions down, ``blocks`` residual blocks,
two transposed convolutions up and a 7x7 convolution to Tanh, with InstanceNorm and ReLU, as the paper's; its
width and block count are options (the paper's 64 and 9 at 256 px; the defaults 32 and 3 suit 32 px crops on a
CPU). Discriminators: the PatchGAN of :mod:`imgx.models.pix2pix` with InstanceNorm. Sides must be multiples of 4.
The loss weights travel with the model, as pix2pix's ``lambda_l1`` does: ``lambda_cycle`` (the paper's 10) and
``lambda_identity`` (0.5, a fraction of the cycle weight as in the reference code's ``--lambda_identity``).
"""

from __future__ import annotations

import torch
from torch import nn

from imgx.models.pix2pix import PatchDiscriminator, init_weights, patch_layers

DEFAULT_WIDTH = 32
DEFAULT_BLOCKS = 3
LAMBDA_CYCLE = 10.0  # the paper's cycle weight
LAMBDA_IDENTITY = 0.5  # identity loss, as a fraction of the cycle weight (the reference code's convention)
POOL_SIZE = 50  # discriminators see a history of 50 generated images


class ResidualBlock(nn.Module):
    """``x + conv(norm(relu(conv(norm(x)))))`` with reflection padding."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetGenerator(nn.Module):
    """``(N, in_channels, S, S)`` → ``(N, out_channels, S, S)`` in ``[-1, 1]``, S a multiple of 4."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = DEFAULT_WIDTH,
                 blocks: int = DEFAULT_BLOCKS):
        super().__init__()
        w = width
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, w, 7), nn.InstanceNorm2d(w),
                                   nn.ReLU(True)]
        for c in (w, 2 * w):
            layers += [nn.Conv2d(c, 2 * c, 3, 2, 1), nn.InstanceNorm2d(2 * c), nn.ReLU(True)]
        layers += [ResidualBlock(4 * w) for _ in range(blocks)]
        for c in (4 * w, 2 * w):
            layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(c // 2),
                       nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(w, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CycleGAN(nn.Module):
    """``g_ab``, ``g_ba`` (generators) and ``d_a``, ``d_b`` (discriminators of real A and real B).

    Args:
        channels_a, channels_b: channels of the two domains.
        image_size: side of the square images (a multiple of 4; sizes the PatchGANs).
        lambda_cycle: weight of the L1 cycle losses.
        lambda_identity: weight of the identity losses, as a fraction of ``lambda_cycle``.
    """

    SIZE_MULTIPLE = 4

    def __init__(self, channels_a: int = 3, channels_b: int = 3, image_size: int = 32, *,
                 width: int = DEFAULT_WIDTH, blocks: int = DEFAULT_BLOCKS, lambda_cycle: float = LAMBDA_CYCLE,
                 lambda_identity: float = LAMBDA_IDENTITY):
        super().__init__()
        self.lambda_cycle, self.lambda_identity = float(lambda_cycle), float(lambda_identity)
        if image_size % self.SIZE_MULTIPLE:
            raise ValueError(f"CycleGAN halves the image twice: image_size must be a multiple of 4, got {image_size}")
        self.g_ab = ResNetGenerator(channels_a, channels_b, width, blocks)
        self.g_ba = ResNetGenerator(channels_b, channels_a, width, blocks)
        layers = patch_layers(image_size)
        self.d_a = PatchDiscriminator(channels_a, width, layers, norm="instance")
        self.d_b = PatchDiscriminator(channels_b, width, layers, norm="instance")
        self.apply(init_weights)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """A → B."""
        return self.g_ab(a)
