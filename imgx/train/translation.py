"""Image-to-image translation loops (pix2pix, CycleGAN): fixed epochs over preloaded tensors, seeded.

As in :mod:`imgx.train.supervised`, the data live as whole tensors on the training device and batches are
index slices (no ``DataLoader``, no per-item PIL work). The batch order and the image pool draw from private
``torch.Generator``s seeded by the case seed; the global RNG is untouched. Full batches only: a batch of one
breaks BatchNorm at the U-Net's 1x1 bottleneck; a set smaller than a batch is one batch. Adam with the papers'
betas (0.5, 0.999). The first non-finite loss raises :class:`~imgx.errors.TrainingDiverged` naming the epoch and
the step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from imgx.errors import TrainingDiverged
from imgx.models.cyclegan import POOL_SIZE

BETAS = (0.5, 0.999)


def _check(epoch: int, step: int, **losses: torch.Tensor) -> dict[str, float]:
    values = {k: float(v.item()) for k, v in losses.items()}
    for value in values.values():
        if not math.isfinite(value):
            raise TrainingDiverged(epoch, step, value)
    return values


def _epochs(epochs: int, progress: Callable[..., Any] | None):
    return progress(range(1, epochs + 1), desc="epochs", unit="epoch") if progress else range(1, epochs + 1)


def fit_pix2pix(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, epochs: int, batch_size: int,
                lr: float, seed: int, device: str = "cpu", on_epoch: Callable[[int], dict[str, Any]] | None = None,
                progress: Callable[..., Any] | None = None) -> list[dict[str, Any]]:
    """Train a :class:`~imgx.models.pix2pix.Pix2Pix` on pairs; returns one history row per epoch.

    Per batch: the conditional discriminator (unless ``model.loss == "l1"``) on ``cat(input, target)`` → real
    and ``cat(input, G(input))`` → fake (BCE on logits, halved as in the paper), then the generator on
    ``lambda_l1 * L1(G(input), target)`` and/or the non-saturating GAN loss, as ``model.loss`` says.

    Returns:
        Rows ``{"epoch", "g_loss", "gan_loss", "l1_loss", "d_loss", "seconds", ...}`` (means over the epoch; terms the
        loss does not use are ``None``); ``on_epoch(epoch)``'s dict is merged into the row.
    """
    gen_net, disc = model.generator, model.discriminator
    use_gan, use_l1 = model.loss in ("gan", "l1+gan"), model.loss in ("l1", "l1+gan")
    model.to(device).train()
    x, y = inputs.to(device), targets.to(device)
    opt_g = torch.optim.Adam(gen_net.parameters(), lr=lr, betas=BETAS, foreach=True)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=BETAS, foreach=True)
    bce = nn.BCEWithLogitsLoss()
    rng = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    steps, bs = max(1, n // batch_size), min(batch_size, n)
    history = []
    for epoch in _epochs(epochs, progress):
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=rng).to(device)
        sums = {"g_loss": 0.0, "gan_loss": 0.0, "l1_loss": 0.0, "d_loss": 0.0}
        for step in range(steps):
            idx = order[step * bs:(step + 1) * bs]
            a, b = x[idx], y[idx]
            fake = gen_net(a)
            losses: dict[str, torch.Tensor] = {}
            if use_gan:
                opt_d.zero_grad(set_to_none=True)
                real_logits = disc(torch.cat([a, b], 1))
                fake_logits = disc(torch.cat([a, fake.detach()], 1))
                d_loss = 0.5 * (bce(real_logits, torch.ones_like(real_logits))
                                + bce(fake_logits, torch.zeros_like(fake_logits)))
                d_loss.backward()
                opt_d.step()
                losses["d_loss"] = d_loss
            opt_g.zero_grad(set_to_none=True)
            g_loss = torch.zeros((), device=device)
            if use_gan:
                logits = disc(torch.cat([a, fake], 1))
                losses["gan_loss"] = bce(logits, torch.ones_like(logits))
                g_loss = g_loss + losses["gan_loss"]
            if use_l1:
                losses["l1_loss"] = nn.functional.l1_loss(fake, b)
                g_loss = g_loss + model.lambda_l1 * losses["l1_loss"]
            losses["g_loss"] = g_loss
            values = _check(epoch, step, **losses)  # before the step: a NaN never reaches the weights
            g_loss.backward()
            opt_g.step()
            for k, v in values.items():
                sums[k] += v
        row: dict[str, Any] = {"epoch": epoch, **{k: (v / steps if k in losses else None) for k, v in sums.items()},
                               "seconds": time.perf_counter() - t0}
        if on_epoch is not None:
            row.update(on_epoch(epoch))
            model.train()
        history.append(row)
    model.eval()
    return history


class ImagePool:
    """The discriminator's history of generated images (Shrivastava et al.; CycleGAN's pool of 50).

    Until full, every image is stored and returned; then each image is, with probability 1/2, swapped for a
    random stored one (returned in its place) or returned as is. Draws come from ``generator``.
    """

    def __init__(self, size: int, generator: torch.Generator):
        self.size, self.generator, self.images = size, generator, []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """A batch of the same shape mixing ``images`` (detached) and stored ones."""
        if self.size == 0:
            return images.detach()
        out = []
        for img in images.detach():
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif float(torch.rand((), generator=self.generator)) < 0.5:
                k = int(torch.randint(len(self.images), (), generator=self.generator))
                out.append(self.images[k])
                self.images[k] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)


def fit_cyclegan(model: nn.Module, domain_a: torch.Tensor, domain_b: torch.Tensor, *, epochs: int, batch_size: int,
                 lr: float, seed: int, device: str = "cpu", lambda_cycle: float | None = None,
                 lambda_identity: float | None = None, pool_size: int = POOL_SIZE,
                 on_epoch: Callable[[int], dict[str, Any]] | None = None,
                 progress: Callable[..., Any] | None = None) -> list[dict[str, Any]]:
    """Train a :class:`~imgx.models.cyclegan.CycleGAN` on unpaired domains; one history row per epoch.

    Per batch (A and B batches drawn independently): the generators on the least-squares GAN loss of both
    directions + ``lambda_cycle`` x the L1 cycle losses (A→B→A, B→A→B) + ``lambda_identity * lambda_cycle`` x the
    identity losses (``G_AB(b) ≈ b``, ``G_BA(a) ≈ a``); then each discriminator on real → 1 and pooled fakes → 0
    (least squares, halved). An epoch is ``max(len(A), len(B)) // batch_size`` steps. The paper's schedule: ``lr``
    for the first half of the steps, then a linear decay to zero over the second half (without it, the GAN's
    epoch-to-epoch swings decide the weights that are kept). The loss weights default to the model's
    (``model.lambda_cycle``, ``model.lambda_identity``).

    Returns:
        Rows ``{"epoch", "g_loss", "gan_loss", "cycle_loss", "identity_loss", "d_a_loss", "d_b_loss", "lr",
        "seconds"}`` (``lr``: the learning rate at the epoch's end).
    """
    lambda_cycle = model.lambda_cycle if lambda_cycle is None else lambda_cycle
    lambda_identity = model.lambda_identity if lambda_identity is None else lambda_identity
    model.to(device).train()
    xa, xb = domain_a.to(device), domain_b.to(device)
    gens = list(model.g_ab.parameters()) + list(model.g_ba.parameters())
    opt_g = torch.optim.Adam(gens, lr=lr, betas=BETAS, foreach=True)
    opt_d = torch.optim.Adam(list(model.d_a.parameters()) + list(model.d_b.parameters()), lr=lr, betas=BETAS,
                             foreach=True)
    rng = torch.Generator().manual_seed(seed)
    pool_a, pool_b = ImagePool(pool_size, rng), ImagePool(pool_size, rng)
    mse, l1 = nn.MSELoss(), nn.L1Loss()
    na, nb = xa.shape[0], xb.shape[0]
    bs = min(batch_size, na, nb)
    steps = max(1, max(na, nb) // bs)
    history = []
    total, flat = epochs * steps, epochs * steps // 2
    schedules = [torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (total - i) / (total - flat)))
                 for opt in (opt_g, opt_d)]

    def lsgan(pred: torch.Tensor, real: bool) -> torch.Tensor:
        return mse(pred, torch.full_like(pred, 1.0 if real else 0.0))

    for epoch in _epochs(epochs, progress):
        t0 = time.perf_counter()
        order_a = torch.cat([torch.randperm(na, generator=rng) for _ in range(math.ceil(steps * bs / na))]).to(device)
        order_b = torch.cat([torch.randperm(nb, generator=rng) for _ in range(math.ceil(steps * bs / nb))]).to(device)
        sums: dict[str, float] = {}
        for step in range(steps):
            a, b = xa[order_a[step * bs:(step + 1) * bs]], xb[order_b[step * bs:(step + 1) * bs]]
            fake_b, fake_a = model.g_ab(a), model.g_ba(b)
            for d in (model.d_a, model.d_b):
                d.requires_grad_(False)
            opt_g.zero_grad(set_to_none=True)
            g_gan = lsgan(model.d_b(fake_b), True) + lsgan(model.d_a(fake_a), True)
            cycle = l1(model.g_ba(fake_b), a) + l1(model.g_ab(fake_a), b)
            identity = l1(model.g_ab(b), b) + l1(model.g_ba(a), a) if lambda_identity > 0 else torch.zeros(())
            g_loss = g_gan + lambda_cycle * cycle + lambda_identity * lambda_cycle * identity
            values = _check(epoch, step, g_loss=g_loss, gan_loss=g_gan, cycle_loss=cycle, identity_loss=identity)
            g_loss.backward()
            opt_g.step()
            for d in (model.d_a, model.d_b):
                d.requires_grad_(True)
            opt_d.zero_grad(set_to_none=True)
            d_a = 0.5 * (lsgan(model.d_a(a), True) + lsgan(model.d_a(pool_a.query(fake_a)), False))
            d_b = 0.5 * (lsgan(model.d_b(b), True) + lsgan(model.d_b(pool_b.query(fake_b)), False))
            values |= _check(epoch, step, d_a_loss=d_a, d_b_loss=d_b)
            (d_a + d_b).backward()
            opt_d.step()
            for schedule in schedules:
                schedule.step()
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
        row: dict[str, Any] = {"epoch": epoch, **{k: v / steps for k, v in sums.items()},
                               "lr": opt_g.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
        if on_epoch is not None:
            row.update(on_epoch(epoch))
            model.train()
        history.append(row)
    model.eval()
    return history
