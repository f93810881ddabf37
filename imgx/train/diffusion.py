"""Latent diffusion training: one loop for text-to-image and InstructPix2Pix (the difference is the conditioning).

Two stages, both over preloaded tensors with index-slice batches and a private seeded ``torch.Generator``:

1. :func:`fit_autoencoder` trains the ``AutoencoderKL`` (reconstruction MSE plus a small KL term) and sets its
   ``scaling_factor`` to 1/std of its latents, as Stable Diffusion's VAE has one.
2. :func:`fit_denoiser` freezes the VAE, encodes every image once, and trains the UNet (and the text encoder,
   jointly: at ~30k parameters it has no pretrained knowledge to keep) on the DDPM epsilon objective, with
   classifier-free dropout of the conditioning. The latents follow diffusers' training scripts
   (``examples/text_to_image/train_text_to_image.py``, ``examples/instruct_pix2pix/train_instruct_pix2pix.py``):
   targets are ``latent_dist.sample() * scaling_factor``; an InstructPix2Pix input image enters as
   ``latent_dist.mode()`` unscaled, concatenated to the noisy latents in channels, exactly as the pipeline
   feeds it at inference.

Like the other loops here it takes its components as arguments and imports nothing from ``imgx.models``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from diffusers.training_utils import EMAModel, compute_snr
from torch import nn

from imgx.errors import TrainingDiverged
from imgx.train.flat import FlatParameters

KL_WEIGHT = 1e-4  # per latent element, against per-pixel MSE: enough to keep latents bounded, not to blur
ENCODE_BATCH = 256
PROBE = 512  # images whose reconstruction floor decides when a VAE with a target stops (a fixed seeded draw)
EMA_POWER = 2 / 3  # diffusers' EMAModel warm-up: decay 1 - (1 + step) ** -power (0.989 after 900 steps)


def _epochs(progress, epochs: int, desc: str):
    return progress(range(1, epochs + 1), desc=desc, unit="epoch") if progress else range(1, epochs + 1)


def _check(value: float, epoch: int, step: int) -> None:
    if not math.isfinite(value):
        raise TrainingDiverged(epoch, step, value)


def warmup_cosine(opt: torch.optim.Optimizer, total_steps: int, warmup: int):
    """Linear warm-up then cosine decay to 10%: a fixed short budget ends on a settled model."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def fit_autoencoder(vae: nn.Module, images: torch.Tensor, *, epochs: int, batch_size: int, lr: float, seed: int,
                    device: str = "cpu", progress: Callable[..., Any] | None = None,
                    target_mse: float | None = None) -> list[dict[str, Any]]:
    """Train a diffusers ``AutoencoderKL`` on ``images``; sets ``vae.config.scaling_factor``; returns history rows.

    Args:
        images: ``(N, 3, H, W)`` in ``[-1, 1]``.
        epochs: the epochs to run; with ``target_mse``, the most to run (the lr schedule spans them all).
        target_mse: stop after the first epoch whose reconstruction floor (:func:`reconstruction_mse` of a fixed
            seeded probe of ``PROBE`` images) is at most this. ``None``: run every epoch.

    Returns:
        one row per epoch: ``epoch``, ``stage`` ("vae"), ``loss``, ``recon_mse`` (training batches, sampled
        latents), ``seconds``, and with ``target_mse`` also ``floor`` (the probe's, latent means).

    Raises:
        TrainingDiverged: on the first non-finite batch loss.
    """
    vae.to(device).train()
    x = images.to(device=device, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    flat = FlatParameters(vae.parameters())
    opt = torch.optim.AdamW([flat.param], lr=lr, weight_decay=0.0, foreach=True)
    n = len(x)
    steps = epochs * math.ceil(n / batch_size)
    sched = warmup_cosine(opt, steps, warmup=min(50, steps // 10 + 1))
    probe = None
    if target_mse is not None:
        probe = images[torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:PROBE]]
    history = []
    for epoch in _epochs(progress, epochs, "vae epochs"):
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=gen)
        total = mse_total = 0.0
        for step, start in enumerate(range(0, n, batch_size)):
            idx = order[start:start + batch_size]
            batch = x[idx]
            dist = vae.encode(batch).latent_dist
            z = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=gen).to(device)
            recon = vae.decode(z).sample
            mse = nn.functional.mse_loss(recon, batch)
            kl = 0.5 * (dist.mean.pow(2) + dist.var - 1.0 - dist.logvar).mean()
            loss = mse + KL_WEIGHT * kl
            value = loss.item()
            _check(value, epoch, step)
            flat.zero_grad()
            loss.backward()
            flat.clip_grad_norm_(1.0)
            opt.step()
            sched.step()
            total += value * len(idx)
            mse_total += mse.item() * len(idx)
        row = {"epoch": epoch, "stage": "vae", "loss": total / n, "recon_mse": mse_total / n}
        if probe is not None:
            row["floor"] = reconstruction_mse(vae, probe, device=device)
            vae.train()
        history.append({**row, "seconds": time.perf_counter() - t0})
        if probe is not None and row["floor"] <= target_mse:
            break
    flat.release()
    vae.eval()
    mean, _ = encode(vae, images, device=device)
    std = float(mean.std())
    vae.register_to_config(scaling_factor=1.0 / std if std > 0 else 1.0)
    return history


@torch.no_grad()
def encode(vae: nn.Module, images: torch.Tensor, *, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)`` of the VAE posterior for ``images`` ``(N, 3, H, W)`` in ``[-1, 1]`` (unscaled, on CPU)."""
    vae.eval()
    means, stds = [], []
    for i in range(0, len(images), ENCODE_BATCH):
        dist = vae.encode(images[i:i + ENCODE_BATCH].to(device=device, dtype=torch.float32)).latent_dist
        means.append(dist.mean.cpu())
        stds.append(dist.std.cpu())
    return torch.cat(means), torch.cat(stds)


@torch.no_grad()
def reconstruction_mse(vae: nn.Module, images: torch.Tensor, *, device: str = "cpu") -> float:
    """Mean squared error of ``decode(mode(encode(images)))`` against ``images``: the VAE's floor."""
    vae.eval()
    total = 0.0
    for i in range(0, len(images), ENCODE_BATCH):
        batch = images[i:i + ENCODE_BATCH].to(device=device, dtype=torch.float32)
        recon = vae.decode(vae.encode(batch).latent_dist.mode()).sample
        total += float(nn.functional.mse_loss(recon, batch, reduction="sum"))
    return total / images.numel()


def min_snr_weights(noise_scheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma loss weights for epsilon prediction (Hang et al. 2023), as diffusers' training scripts compute
    them with ``--snr_gamma``: ``min(SNR(t), gamma) / SNR(t)``. The lowest-noise timesteps, whose epsilon losses
    are the largest and whose gradients conflict with the others', weigh less; weight 1 where SNR <= gamma."""
    snr = compute_snr(noise_scheduler, timesteps)
    return snr.clamp(max=gamma) / snr


def fit_denoiser(unet: nn.Module, text_encoder: nn.Module, vae: nn.Module, noise_scheduler, images: torch.Tensor,
                 input_ids: torch.Tensor, *, cond_images: torch.Tensor | None = None, epochs: int, batch_size: int,
                 lr: float, seed: int, device: str = "cpu", uncond_ids: torch.Tensor | None = None,
                 drop_text: float = 0.1, drop_image: float = 0.0, drop_both: float = 0.0, ema: bool = True,
                 snr_gamma: float | None = None,
                 progress: Callable[..., Any] | None = None) -> list[dict[str, Any]]:
    """Train ``unet`` and ``text_encoder`` on the DDPM epsilon objective over the frozen ``vae``'s latents.

    Args:
        images: ``(N, 3, H, W)`` in ``[-1, 1]``: the images to generate (InstructPix2Pix: the edited images).
        input_ids: ``(N, L)`` token ids of each image's caption (or instruction), padded to the context length.
        cond_images: InstructPix2Pix only: ``(N, 3, H, W)`` input images; their latents are concatenated.
        uncond_ids: ``(L,)`` or ``(1, L)`` ids of the empty prompt, used where the text is dropped.
        drop_text, drop_image, drop_both: classifier-free dropout probabilities per example, disjoint
            (text-to-image: 10% empty prompt; InstructPix2Pix's paper: 5% each).
        ema: keep an exponential moving average of the weights (diffusers' ``EMAModel`` with its warm-up,
            power 2/3, as ``train_text_to_image.py --use_ema``) and leave it in the modules at the end.
        snr_gamma: Min-SNR loss weighting (Hang et al. 2023; ``train_text_to_image.py --snr_gamma``): each
            example's loss is weighted by ``min(SNR(t), gamma) / SNR(t)``; ``None``: plain MSE.

    Returns:
        one row per epoch: ``epoch``, ``stage`` ("denoiser"), ``loss``, ``seconds``.

    Raises:
        TrainingDiverged: on the first non-finite batch loss.
    """
    if (drop_text > 0 or drop_both > 0) and uncond_ids is None:
        raise ValueError("uncond_ids (the empty prompt's ids) are needed to drop the text conditioning")
    if cond_images is None and (drop_image > 0 or drop_both > 0):
        raise ValueError("drop_image/drop_both need cond_images")
    if drop_text + drop_image + drop_both > 1:
        raise ValueError("drop_text + drop_image + drop_both must not exceed 1")
    gen = torch.Generator().manual_seed(seed)
    # The VAE is frozen here: encode everything once; sample from the posterior per step (as diffusers does).
    mean, std = encode(vae, images, device=device)
    scale = float(vae.config.scaling_factor)
    cond = encode(vae, cond_images, device=device)[0].to(device) if cond_images is not None else None
    mean, std = mean.to(device), std.to(device)
    ids = input_ids.to(device)
    empty = uncond_ids.reshape(1, -1).to(device) if uncond_ids is not None else None
    alphas = noise_scheduler.alphas_cumprod.to(device=device, dtype=torch.float32)
    timesteps = int(noise_scheduler.config.num_train_timesteps)
    unet.to(device).train()
    text_encoder.to(device).train()
    params = [*unet.parameters(), *text_encoder.parameters()]
    # foreach (here and in every training loop): on CPU the same per-tensor ops, so bitwise the same weights, with
    # less Python per step (4% of this step on 2 cores: bench/RESULTS.md, session 18); packed into one buffer,
    # one op per step instead of 257 (bitwise the same again, ~5% more: imgx.train.flat).
    flat = FlatParameters(params)
    opt = torch.optim.AdamW([flat.param], lr=lr, weight_decay=0.0, foreach=True)
    n = len(mean)
    steps = epochs * math.ceil(n / batch_size)
    sched = warmup_cosine(opt, steps, warmup=min(100, steps // 10 + 1))
    averaged = EMAModel(params, use_ema_warmup=True, power=EMA_POWER, foreach=True) if ema else None
    history = []
    for epoch in _epochs(progress, epochs, "denoiser epochs"):
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for step, start in enumerate(range(0, n, batch_size)):
            idx = order[start:start + batch_size].to(device)
            b = len(idx)
            latents = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen).to(device)) * scale
            noise = torch.randn(latents.shape, generator=gen).to(device)
            t = torch.randint(0, timesteps, (b,), generator=gen).to(device)
            a = alphas[t].view(b, 1, 1, 1)
            noisy = a.sqrt() * latents + (1 - a).sqrt() * noise  # DDPMScheduler.add_noise, in float32
            # Disjoint dropout bands, as in diffusers' InstructPix2Pix script: [0, text) text only,
            # [text, text+both) both, [text+both, text+both+image) image only.
            r = torch.rand(b, generator=gen).to(device)
            no_text = r < drop_text + drop_both
            batch_ids = torch.where(no_text[:, None], empty, ids[idx]) if empty is not None else ids[idx]
            hidden = text_encoder(batch_ids)[0]
            if cond is not None:
                no_image = (r >= drop_text) & (r < drop_text + drop_both + drop_image)
                image_latents = cond[idx] * (~no_image).view(b, 1, 1, 1).to(cond.dtype)
                noisy = torch.cat([noisy, image_latents], dim=1)
            pred = unet(noisy, t, encoder_hidden_states=hidden).sample
            if snr_gamma is None:
                loss = nn.functional.mse_loss(pred.float(), noise)
            else:
                per_example = nn.functional.mse_loss(pred.float(), noise, reduction="none").mean(dim=(1, 2, 3))
                loss = (per_example * min_snr_weights(noise_scheduler, t, snr_gamma)).mean()
            value = loss.item()
            _check(value, epoch, step)
            flat.zero_grad()
            loss.backward()
            flat.clip_grad_norm_(1.0)
            opt.step()
            sched.step()
            if averaged is not None:
                averaged.step(params)
            total += value * b
        history.append({"epoch": epoch, "stage": "denoiser", "loss": total / n, "seconds": time.perf_counter() - t0})
    flat.release()
    if averaged is not None:
        averaged.copy_to(params)
    unet.eval()
    text_encoder.eval()
    return history
