"""pix2pix (Isola et al., 2017): a U-Net generator with skip connections and a conditional PatchGAN discriminator.

Generator: ``depth`` stride-2 4x4 convolutions down (LeakyReLU 0.2, BatchNorm except on the first and the
innermost), the mirror of transposed convolutions up (ReLU, BatchNorm, Tanh out), each level's encoder features
concatenated to the decoder's; channels ``width * 2**i`` capped at ``8 * width``. An image side must halve
cleanly ``depth`` times (:func:`size_multiple`). The paper's decoder dropout (its only noise source) is left
out so that evaluation is deterministic.

Discriminator: the paper's PatchGAN (4x4 convolutions, LeakyReLU 0.2, BatchNorm), conditioned on the input
(``cat(input, output)``), with as many stride-2 layers as keep its receptive field within half the image
(:func:`patch_layers`: 70x70 patches at 256 px as in the paper, 16x16 at 32 px). Weights start from N(0, 0.02).
"""

from __future__ import annotations

import torch
from torch import nn

DEFAULT_DEPTH = 5
DEFAULT_WIDTH = 32
DEFAULT_LAMBDA_L1 = 100.0
LOSSES = ("l1", "gan", "l1+gan")


def size_multiple(depth: int = DEFAULT_DEPTH) -> int:
    """The U-Net halves the image ``depth`` times: sides must be multiples of ``2**depth``."""
    return 2**depth


def receptive_field(layers: int) -> int:
    """Receptive field in pixels of a PatchGAN with ``layers`` stride-2 convolutions (16, 34, 70 for 1, 2, 3)."""
    rf = 4 + 3  # the two stride-1 4x4 convolutions at the end
    for _ in range(layers):
        rf = (rf - 1) * 2 + 4
    return rf


def patch_layers(image_size: int) -> int:
    """Stride-2 layers (1 to 3) whose receptive field stays within half the image side."""
    return max([n for n in (1, 2, 3) if receptive_field(n) <= image_size // 2], default=1)


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) convolutions, N(1, 0.02) norm scales, zero biases, as the papers' reference code."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class UNetGenerator(nn.Module):
    """``(N, in_channels, S, S)`` → ``(N, out_channels, S, S)`` in ``[-1, 1]``, S a multiple of ``2**depth``."""

    def __init__(self, in_channels: int, out_channels: int = 3, depth: int = DEFAULT_DEPTH,
                 width: int = DEFAULT_WIDTH):
        super().__init__()
        ch = [width * min(2**i, 8) for i in range(depth)]
        self.depth = depth
        self.down = nn.ModuleList()
        for i in range(depth):
            if i == 0:
                self.down.append(nn.Conv2d(in_channels, ch[0], 4, 2, 1))
                continue
            layers = [nn.LeakyReLU(0.2, inplace=False), nn.Conv2d(ch[i - 1], ch[i], 4, 2, 1, bias=i == depth - 1)]
            if i < depth - 1:
                layers.append(nn.BatchNorm2d(ch[i]))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()
        for j in range(depth):  # up[j] maps level j (side S / 2**(j+1)) to side S / 2**j
            c_in = ch[j] if j == depth - 1 else 2 * ch[j]
            if j == 0:
                self.up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c_in, out_channels, 4, 2, 1), nn.Tanh()))
            else:
                self.up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c_in, ch[j - 1], 4, 2, 1, bias=False),
                                             nn.BatchNorm2d(ch[j - 1])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode, then decode with the skip connections."""
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        h = self.up[-1](skips[-1])
        for j in range(self.depth - 2, -1, -1):
            h = self.up[j](torch.cat([h, skips[j]], dim=1))
        return h


class PatchDiscriminator(nn.Module):
    """PatchGAN: images ``(N, channels, S, S)`` → a map of real/fake logits, one per overlapping patch.

    Args:
        norm: ``"batch"`` (pix2pix) or ``"instance"`` (CycleGAN).
    """

    def __init__(self, channels: int, width: int = DEFAULT_WIDTH, layers: int = 3, norm: str = "batch"):
        super().__init__()

        def norm_layer(c: int) -> nn.Module:
            return nn.BatchNorm2d(c) if norm == "batch" else nn.InstanceNorm2d(c)

        seq: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        c = width
        for n in range(1, layers):
            c_next = width * min(2**n, 8)
            seq += [nn.Conv2d(c, c_next, 4, 2, 1, bias=False), norm_layer(c_next), nn.LeakyReLU(0.2, inplace=True)]
            c = c_next
        c_next = width * min(2**layers, 8)
        seq += [nn.Conv2d(c, c_next, 4, 1, 1, bias=False), norm_layer(c_next), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(c_next, 1, 4, 1, 1)]
        self.net = nn.Sequential(*seq)
        self.layers = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patch logits ``(N, 1, h, w)``."""
        return self.net(x)


class Pix2Pix(nn.Module):
    """A U-Net generator and its conditional PatchGAN, with the loss recipe.

    Args:
        in_channels, out_channels: of the input and target images.
        image_size: side of the square images (sizes the PatchGAN; must be a multiple of ``2**depth``).
        loss: ``"l1"`` (no discriminator), ``"gan"`` (conditional GAN alone) or ``"l1+gan"`` (the paper's).
        lambda_l1: weight of the L1 term (the paper's 100).
    """

    def __init__(self, in_channels: int, out_channels: int = 3, image_size: int = 32, *, depth: int = DEFAULT_DEPTH,
                 width: int = DEFAULT_WIDTH, loss: str = "l1+gan", lambda_l1: float = DEFAULT_LAMBDA_L1):
        super().__init__()
        if image_size % size_multiple(depth):
            raise ValueError(f"pix2pix depth {depth} halves the image {depth} times: image_size must be a multiple "
                             f"of {size_multiple(depth)}, got {image_size}")
        if loss not in LOSSES:
            raise ValueError(f"pix2pix loss must be one of {LOSSES}, got {loss!r}")
        self.loss, self.lambda_l1 = loss, float(lambda_l1)
        self.generator = UNetGenerator(in_channels, out_channels, depth, width)
        self.discriminator = PatchDiscriminator(in_channels + out_channels, width, patch_layers(image_size))
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The generator's translation of ``x``."""
        return self.generator(x)
