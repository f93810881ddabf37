"""Contrastive image-text training of a transformers ``CLIPModel`` over preloaded tensors.

Symmetric InfoNCE, as CLIP's paper: cross-entropy over image->text and text->image similarities scaled by the
model's learned ``logit_scale``. Captions repeat in imgx's data (ten digit captions for a thousand digits),
so every pair with the same caption counts as a positive (targets spread evenly over them) instead of
pushing identical captions apart as false negatives. Like the other loops it imports nothing from
``imgx.models``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from imgx.errors import TrainingDiverged
from imgx.train.diffusion import warmup_cosine

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clamps the temperature at 100


def _features(out) -> torch.Tensor:
    return out if torch.is_tensor(out) else out.pooler_output


def clip_loss(model: nn.Module, pixels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Symmetric multi-positive InfoNCE for a batch (pairs with equal ``ids`` rows are positives)."""
    img = nn.functional.normalize(_features(model.get_image_features(pixel_values=pixels)), dim=-1)
    txt = nn.functional.normalize(_features(model.get_text_features(input_ids=ids)), dim=-1)
    logits = model.logit_scale.exp() * img @ txt.T
    same = (ids[:, None, :] == ids[None, :, :]).all(-1).float()
    targets = same / same.sum(1, keepdim=True)
    return 0.5 * (nn.functional.cross_entropy(logits, targets) + nn.functional.cross_entropy(logits.T, targets))


def fit_clip(model: nn.Module, images: torch.Tensor, input_ids: torch.Tensor, *, epochs: int, batch_size: int,
             lr: float, seed: int, device: str = "cpu",
             progress: Callable[..., Any] | None = None) -> list[dict[str, Any]]:
    """Train ``model`` (a ``CLIPModel``) contrastively on image-caption pairs; returns one row per epoch.

    Args:
        images: ``(N, 3, S, S)`` in ``[-1, 1]`` at the vision tower's size (the processor's normalisation).
        input_ids: ``(N, L)`` caption ids; padding with the EOS/pad id needs no attention mask (CLIP pools at
            the first EOS behind a causal mask).

    Returns:
        rows ``epoch``, ``stage`` ("clip"), ``loss``, ``seconds``.

    Raises:
        TrainingDiverged: on the first non-finite batch loss.
    """
    model.to(device).train()
    x = images.to(device=device, dtype=torch.float32)
    ids = input_ids.to(device)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, foreach=True)
    n = len(x)
    steps = epochs * math.ceil(n / batch_size)
    sched = warmup_cosine(opt, steps, warmup=min(50, steps // 10 + 1))
    history = []
    epochs_iter = progress(range(1, epochs + 1), desc="clip epochs", unit="epoch") if progress else range(1, epochs + 1)
    for epoch in epochs_iter:
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=gen).to(device)
        total = 0.0
        for step, start in enumerate(range(0, n, batch_size)):
            idx = order[start:start + batch_size]
            loss = clip_loss(model, x[idx], ids[idx])
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingDiverged(epoch, step, value)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
            total += value * len(idx)
        history.append({"epoch": epoch, "stage": "clip", "loss": total / n, "seconds": time.perf_counter() - t0})
    model.eval()
    return history


@torch.no_grad()
def embed(model: nn.Module, images: torch.Tensor | None = None, input_ids: torch.Tensor | None = None, *,
          batch_size: int = 256, device: str = "cpu") -> torch.Tensor:
    """L2-normalised image (``images`` given) or text (``input_ids`` given) embeddings ``(N, D)`` on CPU."""
    model.eval()
    data = images if images is not None else input_ids
    out = []
    for i in range(0, len(data), batch_size):
        chunk = data[i:i + batch_size].to(device)
        feats = (model.get_image_features(pixel_values=chunk.float()) if images is not None
                 else model.get_text_features(input_ids=chunk))
        out.append(nn.functional.normalize(_features(feats).float(), dim=-1).cpu())
    return torch.cat(out)


def zero_shot_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, class_ids: torch.Tensor, *,
                       classes: Sequence[int] | None = None, device: str = "cpu") -> float:
    """Fraction of ``images`` whose most similar class caption is the caption of their label.

    Args:
        images: ``(N, 3, H, W)`` in ``[-1, 1]``; ``labels``: ``(N,)`` label values.
        class_ids: ``(K, T)`` token ids, one caption per class.
        classes: the label value of each row of ``class_ids`` (default ``0..K-1``), so that a class list that
            skips a label (digits 3 and 5 only) compares label values, not row indices, with the labels.
    """
    values = torch.arange(len(class_ids)) if classes is None else torch.as_tensor(list(classes), dtype=torch.long)
    if len(values) != len(class_ids):
        raise ValueError(f"{len(values)} class values for {len(class_ids)} class captions")
    img = embed(model, images=images, device=device)
    txt = embed(model, input_ids=class_ids, device=device)
    return float((values[(img @ txt.T).argmax(1)] == labels.cpu().long()).float().mean())
