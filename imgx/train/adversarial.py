"""The GAN loop: fixed epochs, one discriminator update then one generator update per batch, seeded.

Losses are binary cross-entropy (computed from logits, which is the same BCE without the overflow of
``log(sigmoid)``); the generator uses the non-saturating form (fakes labelled real). Data are preloaded
tensors sliced by index, as in :mod:`imgx.train.supervised`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from imgx.errors import TrainingDiverged


def _check(value: float, epoch: int, step: int) -> float:
    if not math.isfinite(value):
        raise TrainingDiverged(epoch, step, value)
    return value


def fit_gan(model: nn.Module, images: torch.Tensor, *, epochs: int, batch_size: int, lr: float, seed: int,
            device: str = "cpu", betas: tuple[float, float] = (0.5, 0.999),
            on_epoch: Callable[[int], dict[str, Any]] | None = None,
            progress: Callable[..., Any] | None = None) -> list[dict[str, Any]]:
    """Train a :class:`~imgx.models.dcgan.DCGAN` on ``images``; returns one history row per epoch.

    Args:
        model: has ``generator``, ``discriminator`` (with ``logits``) and ``noise(n, generator)``.
        images: ``(N, C, S, S)`` real images in ``[-1, 1]``.
        seed: seeds the batch order and the noise (a private ``torch.Generator``; global RNG untouched).
        on_epoch: called after each epoch with the epoch number; its dict is merged into that epoch's row
            (the task adds sample grids, class coverage and diversity there).
        progress: a ``tqdm``-like factory (``ctx.progress``) for the epoch bar.

    Returns:
        Rows ``{"epoch", "d_loss", "g_loss", "d_acc_real", "d_acc_fake", "seconds", ...}``; accuracies are the
        share of real images the discriminator calls real (p > 0.5) and of fakes it calls fake, over the epoch.

    Raises:
        TrainingDiverged: on the first non-finite discriminator or generator loss, naming epoch and step.
    """
    gen_net, disc = model.generator, model.discriminator
    model.to(device).train()
    x = images.to(device)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=betas, foreach=True)
    opt_g = torch.optim.Adam(gen_net.parameters(), lr=lr, betas=betas, foreach=True)
    bce = nn.BCEWithLogitsLoss()
    rng = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    # Full batches only: a batch of one breaks BatchNorm; a set smaller than a batch is one batch.
    steps = max(1, n // batch_size)
    bs = min(batch_size, n)
    history = []
    epochs_iter = progress(range(1, epochs + 1), desc="epochs", unit="epoch") if progress else range(1, epochs + 1)
    for epoch in epochs_iter:
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=rng).to(device)
        d_total = g_total = 0.0
        real_hits = fake_hits = seen = 0
        for step in range(steps):
            real = x[order[step * bs:(step + 1) * bs]]
            m = real.shape[0]
            ones = torch.ones(m, device=device)
            zeros = torch.zeros(m, device=device)
            fake = gen_net(model.noise(m, rng, device))

            # Discriminator: real → 1, fake → 0; the fakes are detached so G is not updated here.
            opt_d.zero_grad(set_to_none=True)
            logit_real = disc.logits(real)
            logit_fake = disc.logits(fake.detach())
            d_loss = bce(logit_real, ones) + bce(logit_fake, zeros)
            d_loss.backward()
            opt_d.step()

            # Generator: make the (just updated) discriminator call the same fakes real.
            opt_g.zero_grad(set_to_none=True)
            g_loss = bce(disc.logits(fake), ones)
            g_loss.backward()
            opt_g.step()

            d_total += _check(d_loss.item(), epoch, step) * m
            g_total += _check(g_loss.item(), epoch, step) * m
            real_hits += int((logit_real.detach() > 0).sum())
            fake_hits += int((logit_fake.detach() < 0).sum())
            seen += m
        row: dict[str, Any] = {"epoch": epoch, "d_loss": d_total / seen, "g_loss": g_total / seen,
                               "d_acc_real": real_hits / seen, "d_acc_fake": fake_hits / seen,
                               "seconds": time.perf_counter() - t0}
        if on_epoch is not None:
            row.update(on_epoch(epoch))
            model.train()
        history.append(row)
    model.eval()
    return history
