"""Micro latent-diffusion components, built offline from configs, for the models imgx trains itself.

The sizes follow the feasibility runs of issues 14 and 15 (2 CPU cores, about three minutes of training):
a ~160k-parameter ``AutoencoderKL`` (16x16 RGB -> 8x8x4 latents), a ~1M-parameter ``UNet2DConditionModel`` with
cross-attention, a ~30k-parameter ``CLIPTextModel`` and a CLIP tokenizer whose vocabulary is the captions'
words. Weights are random here; :mod:`imgx.train.diffusion` trains them and :mod:`imgx.models.trained` saves
them as an ordinary diffusers folder.

The noise schedule is ``scaled_linear`` (Stable Diffusion's): ``squaredcos_cap_v2`` broke sampling from the
last timestep at this scale (issue 14). Timesteps are spaced ``trailing`` so that even 10 sampling steps start
from (almost) pure noise, the setting that matches how the model is trained.
"""

from __future__ import annotations

from collections import Counter

from imgx.models.tiny import bytes_to_unicode

# Bump when the micro architectures or the tokenizer construction change (part of every trained model's key).
MICRO_VERSION = 5
KINDS = {"text-to-image": 4, "instruct-pix2pix": 8}  # kind -> UNet input channels
TEXT_HIDDEN = 32
# Context length: the longest training caption, in tokens with BOS and EOS, rounded up to a multiple of
# CONTEXT_STEP (at most CONTEXT). Padding positions dilute the caption: with CLIP's 77 (or a fixed 32) for
# five-word captions, the text encoder's output over the context was mostly padding, and the micro UNet took
# about 700 steps to follow the digit a prompt names against about 450 with a context of 8 (issue 14).
# Longer prompts at inference truncate exactly as CLIP's do.
CONTEXT = 77
CONTEXT_STEP = 8
TOKEN_INIT_SCALE = 10.0
SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
            "prediction_type": "epsilon", "timestep_spacing": "trailing", "steps_offset": 1, "clip_sample": False,
            "set_alpha_to_one": False}


def _caption_words(captions: list[str]) -> Counter:
    """The pre-tokenized words of the captions exactly as the CLIP tokenizer splits them (byte-level strings)."""
    from transformers import CLIPTokenizer

    backend = CLIPTokenizer(vocab={"<|startoftext|>": 0, "<|endoftext|>": 1}, merges=[]).backend_tokenizer
    words: Counter = Counter()
    for caption in captions:
        text = backend.normalizer.normalize_str(caption)
        words.update(w for w, _ in backend.pre_tokenizer.pre_tokenize_str(text))
    return words


def _learn_merges(words: Counter) -> list[tuple[str, str]]:
    """BPE merges, learned until every word is one symbol (so applying them in order rebuilds each whole word)."""
    seqs = {w: [*w[:-1], w[-1] + "</w>"] for w in words if w}
    merges: list[tuple[str, str]] = []
    while True:
        pairs: Counter = Counter()
        for w, seq in seqs.items():
            for pair in zip(seq, seq[1:], strict=False):
                pairs[pair] += words[w]
        if not pairs:
            return merges
        # Most frequent first; ties broken by the pair itself so the vocabulary never depends on dict order.
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        joined = best[0] + best[1]
        for w, seq in seqs.items():
            out, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and (seq[i], seq[i + 1]) == best:
                    out.append(joined)
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            seqs[w] = out


def word_tokenizer(captions: list[str], *, max_length: int | None = None):
    """A CLIP tokenizer whose vocabulary holds every caption word as a whole token (``word</w>``).

    The 512 byte-level tokens of :func:`imgx.models.tiny.tiny_clip_tokenizer` stay in the vocabulary, so an
    unseen word still tokenizes (into the pieces the merges can build, else into single bytes); BPE merges
    learned on the captions' words come next, then ``<|startoftext|>`` and ``<|endoftext|>`` (also pad and unk).
    Lower-cased as CLIP's; ``max_length`` tokens of context (BOS and EOS included; default: the longest
    caption's tokens rounded up to a multiple of ``CONTEXT_STEP``, at most ``CONTEXT``), truncated as CLIP's.
    """
    from transformers import CLIPTokenizer

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": i + 256 for i, c in enumerate(chars)})
    merges = _learn_merges(_caption_words(captions))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=list(merges), model_max_length=max_length or CONTEXT)
    if max_length is None:
        longest = max((len(ids) for ids in tokenizer(list(captions), verbose=False).input_ids), default=2)
        tokenizer.model_max_length = min(CONTEXT, -(-longest // CONTEXT_STEP) * CONTEXT_STEP)
    return tokenizer


def text_config(tokenizer, *, hidden: int = TEXT_HIDDEN, layers: int = 2, heads: int = 4, intermediate: int = 37,
                projection: int | None = None):
    """A ``CLIPTextConfig`` for ``tokenizer`` (vocabulary size, BOS/EOS/pad ids, context length)."""
    from transformers import CLIPTextConfig

    kwargs = {"projection_dim": projection} if projection else {}
    return CLIPTextConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id, hidden_size=hidden, intermediate_size=intermediate,
                          num_attention_heads=heads, num_hidden_layers=layers, vocab_size=len(tokenizer),
                          max_position_embeddings=tokenizer.model_max_length, layer_norm_eps=1e-5, **kwargs)


def micro_vae(seed: int):
    """``AutoencoderKL`` (~160k parameters): RGB ``(N, 3, S, S)`` -> latents ``(N, 4, S/2, S/2)``."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32),
                         layers_per_block=1, norm_num_groups=8,
                         down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                         up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), mid_block_add_attention=False)


def micro_unet(in_channels: int, latent_size: int, seed: int):
    """``UNet2DConditionModel`` (~1M parameters) over ``latent_size``-square latents, cross-attending to text.

    Cross-attention sits at the coarse level only (and the mid block), as in diffusers' own small test UNets:
    at full latent resolution it cost 40% of every training step (CPU attention kernels at head width 8) and
    the model learned to follow prompts no faster per step (issue 14's measurements).
    """
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=latent_size, in_channels=in_channels, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=TEXT_HIDDEN,
        attention_head_dim=8, norm_num_groups=16, transformer_layers_per_block=1,
        # The caption, attention-pooled, is also added to the timestep embedding (diffusers' "text" addition
        # embedding): through cross-attention alone a micro UNet learned the digits but ignored which one the
        # prompt asked for within the training budget (prompt accuracy at chance after 690 steps).
        addition_embed_type="text", addition_embed_type_num_heads=4)


def schedulers():
    """``(training DDPMScheduler, inference DDIMScheduler)`` from one scaled-linear config.

    The inference scheduler's config is what imgx's eight scheduler names are built from (``from_config``).
    """
    from diffusers import DDIMScheduler, DDPMScheduler

    train = DDPMScheduler(**{k: v for k, v in SCHEDULE.items() if k != "set_alpha_to_one"})
    return train, DDIMScheduler.from_config(train.config, set_alpha_to_one=False)


def micro_components(kind: str, *, image_size: int, tokenizer, seed: int) -> dict:
    """Random-weight micro components of a ``kind`` pipeline (``text-to-image`` or ``instruct-pix2pix``).

    Returns:
        ``unet``, ``vae``, ``text_encoder``, ``tokenizer``, ``scheduler`` (inference) and ``noise_scheduler``
        (training); the pipeline takes all but ``noise_scheduler``.
    """
    import torch
    from transformers import CLIPTextModel

    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    if image_size % 2:
        raise ValueError(f"image_size {image_size} must be even (latents are half the image size)")
    train, infer = schedulers()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(text_config(tokenizer))
    with torch.no_grad():
        # CLIP initialises token and position embeddings alike (std 0.02): in a 2-layer encoder trained from scratch
        # the positions then dominate its output (the word that differs between two captions moved it by ~8%),
        # and the UNet learned to ignore the text. Larger token embeddings make the words carry the output.
        text_encoder.get_input_embeddings().weight.mul_(TOKEN_INIT_SCALE)
    return {"unet": micro_unet(KINDS[kind], image_size // 2, seed), "vae": micro_vae(seed),
            "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": infer, "noise_scheduler": train}


def micro_clip(tokenizer, *, image_size: int, seed: int, projection: int = 32):
    """A micro ``CLIPModel`` (small ViT for ``image_size`` px, small text tower) and its ``CLIPProcessor``.

    The image processor resizes to ``image_size`` and normalises with mean = std = 0.5, so its pixel values
    are the ``[-1, 1]`` tensors the model is trained on.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPVisionConfig

    patch = 4 if image_size <= 32 else 8
    vision = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_hidden_layers=2,
                              image_size=image_size, patch_size=patch, projection_dim=projection)
    text = text_config(tokenizer, hidden=64, intermediate=128, projection=projection)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=projection)
    torch.manual_seed(seed)
    model = CLIPModel(config)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": image_size},
                                           crop_size={"height": image_size, "width": image_size},
                                           image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5]),
        tokenizer=tokenizer)
    return model, processor
