"""CLIP metrics for text-guided edits: CLIP score, image similarity and the paper's directional similarity.

Pure functions on embeddings first (:func:`clip_score`, :func:`image_similarity`,
:func:`directional_similarity`), a thin loader second (:class:`ClipEmbedder`). The CLIP model is configurable
(``metric_options: {clip_score: {model: ...}}``, default ``openai/clip-vit-large-patch14``) and loaded with
``from_pretrained`` (safetensors only, cache only under ``HF_HUB_OFFLINE``); when it cannot be loaded the
caller reports ``unavailable`` rows with :class:`ClipUnavailable`'s reason, never a number.

Conventions:
    * ``clip_score`` is the mean over pairs of ``100 * max(cos(image_i, text_i), 0)``: each pair is clamped
      before averaging, as in Hessel et al.'s CLIPScore, so one anti-aligned pair counts as 0 instead of
      cancelling an aligned one, and every pair's score is a row value with a confidence interval. torchmetrics'
      ``CLIPScore`` clamps the mean instead (``max(mean(100 * cos), 0)``); the two agree when no cosine is
      negative, which is the usual case for matching captions.
    * ``clip_image_similarity`` is the plain cosine between input and output image embeddings.
    * ``clip_directional_similarity`` (InstructPix2Pix, Brooks et al. 2023, after StyleGAN-NADA) is the cosine
      between the change in image embeddings (output - input) and the change in caption embeddings
      (output caption - input caption), embeddings L2-normalised first.
    * Text longer than CLIP's context (77 tokens with BOS and EOS) is truncated: the first 75 tokens are kept
      and EOS appended (the tokenizer's ``truncation=True``), and the untruncated token count is recorded.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgx.hub import cache_only_reason

DEFAULT_CLIP = "openai/clip-vit-large-patch14"


class ClipUnavailable(Exception):
    """The CLIP model cannot be loaded here; the message is the reason written into ``unavailable`` rows."""


def _normalize(x):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def clip_score(image_embeds, text_embeds):
    """``100 * max(cos, 0)`` per pair (clamped per pair, then averaged by the caller: see the module notes).

    Args:
        image_embeds: ``(N, D)`` image embeddings (any norm).
        text_embeds: ``(N, D)`` text embeddings, row i paired with image i.

    Returns:
        ``(N,)`` float tensor in ``[0, 100]``.
    """
    cos = (_normalize(image_embeds.float()) * _normalize(text_embeds.float())).sum(-1)
    return 100.0 * cos.clamp_min(0)


def image_similarity(input_embeds, output_embeds):
    """Cosine between input and output image embeddings, ``(N, D)`` each → ``(N,)`` in ``[-1, 1]``."""
    return (_normalize(input_embeds.float()) * _normalize(output_embeds.float())).sum(-1)


def directional_similarity(image_in, image_out, text_in, text_out):
    """Cosine between the image-embedding change and the caption-embedding change (all ``(N, D)`` → ``(N,)``)."""
    d_img = _normalize(image_out.float()) - _normalize(image_in.float())
    d_txt = _normalize(text_out.float()) - _normalize(text_in.float())
    return (_normalize(d_img) * _normalize(d_txt)).sum(-1)


@dataclass
class TextEmbedding:
    """Text embeddings with the token counts before truncation."""

    embeds: Any  # (N, D) float32, L2-normalised
    tokens: list[int]  # untruncated token counts, BOS and EOS included
    truncated: list[bool]


@dataclass
class ClipEmbedder:
    """A loaded CLIP model with its tokenizer and image processor; embeddings are cached by content."""

    name: str
    model: Any
    tokenizer: Any
    processor: Any
    device: str
    max_tokens: int
    info: dict[str, Any] = field(default_factory=dict)
    _image_cache: dict[str, Any] = field(default_factory=dict)
    _text_cache: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, name: str = DEFAULT_CLIP, device: str = "cpu") -> ClipEmbedder:
        """Load a CLIP model (hub id or local folder) with safetensors; cache only when offline (``imgx.hub``).

        Raises:
            ClipUnavailable: with the reason (not cached offline, not a CLIP folder, pickle-only weights ...).
        """
        import torch
        from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

        local = os.path.isdir(name)
        cache_only = None if local else cache_only_reason()
        local_only = local or cache_only is not None
        from imgx.models.instruct_pix2pix import quiet_loading

        try:
            with quiet_loading():
                model = CLIPModel.from_pretrained(name, use_safetensors=True, local_files_only=local_only)
                tokenizer = CLIPTokenizer.from_pretrained(name, local_files_only=local_only)
                processor = CLIPImageProcessor.from_pretrained(name, local_files_only=local_only)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            if local:
                reason = f"CLIP model folder {name!r} cannot be loaded ({first})"
            elif local_only:
                reason = (f"CLIP weights {name!r} are not in the local Hugging Face cache and {cache_only}; "
                          f"download them where there is network (hf download {name}) or set "
                          "metric_options.<metric>.model to a local folder")
            else:
                reason = f"CLIP weights {name!r} could not be downloaded ({first})"
            raise ClipUnavailable(reason) from None
        model = model.to(device=device, dtype=torch.float32).eval()
        max_tokens = int(model.config.text_config.max_position_embeddings)
        info = {"clip_model": name, "clip_projection_dim": int(model.config.projection_dim),
                "clip_max_tokens": max_tokens}
        return cls(name, model, tokenizer, processor, str(device), max_tokens, info)

    def images(self, images: list) -> Any:
        """Embed PIL images → ``(N, D)`` float32 L2-normalised (on CPU), cached by pixel content."""
        import torch

        keys = [hashlib.sha256(np.asarray(im).tobytes() + str(im.size).encode()).hexdigest() for im in images]
        todo = [(k, im) for k, im in zip(keys, images, strict=True) if k not in self._image_cache]
        if todo:
            pixels = self.processor(images=[im for _, im in todo], return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                out = self.model.get_image_features(pixel_values=pixels.to(self.device))
            emb = _normalize((out if torch.is_tensor(out) else out.pooler_output).float()).cpu()
            for (k, _), e in zip(todo, emb, strict=True):
                self._image_cache[k] = e
        return torch.stack([self._image_cache[k] for k in keys])

    def texts(self, texts: list[str]) -> TextEmbedding:
        """Embed texts → ``(N, D)`` float32 L2-normalised, truncated to the context as documented above."""
        import torch

        counts = [len(ids) for ids in self.tokenizer(list(texts), truncation=False)["input_ids"]]
        todo = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if todo:
            enc = self.tokenizer(todo, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
            with torch.inference_mode():
                out = self.model.get_text_features(input_ids=enc["input_ids"].to(self.device),
                                                   attention_mask=enc["attention_mask"].to(self.device))
            emb = _normalize((out if torch.is_tensor(out) else out.pooler_output).float()).cpu()
            for t, e in zip(todo, emb, strict=True):
                self._text_cache[t] = e
        return TextEmbedding(torch.stack([self._text_cache[t] for t in texts]), counts,
                             [c > self.max_tokens for c in counts])


def get_embedder(name: str, device: str, resources: dict[str, Any] | None = None) -> ClipEmbedder:
    """A :class:`ClipEmbedder` kept in ``resources`` across cases (the failure reason is kept too).

    Raises:
        ClipUnavailable: as :meth:`ClipEmbedder.load`.
    """
    resources = resources if resources is not None else {}
    key = ("clip", name, str(device))
    cached = resources.get(key)
    if cached is None:
        try:
            cached = ClipEmbedder.load(name, device)
        except ClipUnavailable as exc:
            cached = exc
        resources[key] = cached
    if isinstance(cached, ClipUnavailable):
        raise cached
    return cached
