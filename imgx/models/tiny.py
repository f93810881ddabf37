"""Tiny random-weight models built from configs, offline, for tests and the quickstart.

Like diffusers' ``get_dummy_components()``: seeded, small, built from configs and written with
``save_pretrained`` so that they load back through the same ``from_pretrained`` code real weights use.
Nothing here touches the network: the CLIP tokenizer is built from a byte-level vocabulary written here.
Their outputs are noise-like; reports label them as random-weight.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from imgx.cachelock import cache_lock

# Bump when the tiny architectures change, so that caches built by an older imgx are not reused.
TINY_VERSION = 1
MAX_TOKENS = 77  # CLIP's context length, kept so that truncation behaves as with real weights


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from the 256 byte values to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def tiny_clip_tokenizer():
    """A CLIP BPE tokenizer over single bytes (no merges): 256 byte tokens, 256 end-of-word tokens, BOS, EOS.

    Every character becomes one token, so a 77-token context holds about 75 characters: long captions are
    easy to build in tests. Ids: bytes 0..511, ``<|startoftext|>`` 512, ``<|endoftext|>`` 513 (also pad).
    """
    from transformers import CLIPTokenizer

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": i + 256 for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = 512
    vocab["<|endoftext|>"] = 513
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=MAX_TOKENS)


def _text_config(hidden: int = 32, projection: int | None = None):
    from transformers import CLIPTextConfig

    kwargs = {"projection_dim": projection} if projection else {}
    return CLIPTextConfig(bos_token_id=512, eos_token_id=513, pad_token_id=513, hidden_size=hidden,
                          intermediate_size=37, layer_norm_eps=1e-5, num_attention_heads=4, num_hidden_layers=2,
                          vocab_size=514, max_position_embeddings=MAX_TOKENS, **kwargs)


def _clip_config(projection: int = 16):
    from transformers import CLIPConfig, CLIPVisionConfig

    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                              image_size=32, patch_size=8, projection_dim=projection)
    return CLIPConfig(text_config=_text_config(projection=projection).to_dict(), vision_config=vision.to_dict(),
                      projection_dim=projection)


def _image_processor(size: int = 32):
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def tiny_pix2pix_components(seed: int = 0, safety_checker: bool = True) -> dict:
    """The components of a tiny ``StableDiffusionInstructPix2PixPipeline`` (random weights, seeded).

    UNet with 8 input channels (4 noise latents + 4 image latents) as InstructPix2Pix needs, a 2-block VAE
    (latents at half the image size), a 2-layer CLIP text encoder and the byte tokenizer. The optional
    safety checker is a tiny CLIP vision tower whose concept thresholds are set high so that it never fires
    on its own; tests lower them to force hits.
    """
    import torch
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=8, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4,
    )
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(_text_config())
    scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                num_train_timesteps=1000)
    components = {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tiny_clip_tokenizer(),
                  "scheduler": scheduler, "safety_checker": None, "feature_extractor": None,
                  "image_encoder": None}
    if safety_checker:
        from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

        torch.manual_seed(seed)
        checker = StableDiffusionSafetyChecker(_clip_config())
        with torch.no_grad():
            # cos_dist - weight > 0 is a hit; cosines are <= 1, so a weight of 2 never fires.
            checker.concept_embeds_weights.fill_(2.0)
            checker.special_care_embeds_weights.fill_(2.0)
        components["safety_checker"] = checker
        components["feature_extractor"] = _image_processor()
    return components


def tiny_text2image_components(seed: int = 0) -> dict:
    """The components of a tiny ``StableDiffusionPipeline`` (random weights, seeded).

    The same tiny VAE, text encoder and byte tokenizer as :func:`tiny_pix2pix_components`, with a UNet of 4
    input channels (noise latents only) as text-to-image needs; no safety checker. Default output 32x32
    (``sample_size`` 16 latents, VAE scale factor 2).
    """
    import torch
    from diffusers import UNet2DConditionModel

    components = tiny_pix2pix_components(seed, safety_checker=False)
    del components["image_encoder"]
    torch.manual_seed(seed)
    components["unet"] = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )
    # StableDiffusionPipeline warns about (and rewrites) a scheduler config with steps_offset 0; SD ships 1.
    components["scheduler"] = components["scheduler"].__class__.from_config(components["scheduler"].config,
                                                                            steps_offset=1)
    return components


def tiny_sdxl_components(seed: int = 0) -> dict:
    """The components of a tiny Stable Diffusion XL pipeline (random weights, seeded; as diffusers' SDXL tests).

    Two 2-layer CLIP text encoders (the second with a 32-d projection, whose pooled output SDXL adds to the time
    embedding), a UNet with SDXL's ``text_time`` addition embedding over 16x16 latents, the tiny VAE and the byte
    tokenizer for both encoders. ``StableDiffusionXLPipeline(**parts)`` and ``StableDiffusionXLImg2ImgPipeline(
    **parts)`` both take them; default output 32x32.
    """
    import torch
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    base = tiny_pix2pix_components(seed, safety_checker=False)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + 32, cross_attention_dim=64, norm_num_groups=1)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(_text_config(projection=32))
    torch.manual_seed(seed + 1)
    text_encoder_2 = CLIPTextModelWithProjection(_text_config(projection=32))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    return {"unet": unet, "vae": base["vae"], "text_encoder": text_encoder, "text_encoder_2": text_encoder_2,
            "tokenizer": tiny_clip_tokenizer(), "tokenizer_2": tiny_clip_tokenizer(), "scheduler": scheduler,
            "image_encoder": None, "feature_extractor": None}


def _atomic_dir(target: Path, build) -> Path:
    """Build a folder once (other processes wait for it), in a temporary sibling moved into place, so a crash never
    leaves half a model."""
    target = Path(target)
    if (target / ".complete").exists():
        return target
    with cache_lock(target):
        if not (target / ".complete").exists():
            build_atomically(target, build)
    return target


def build_atomically(target: Path, build) -> None:
    """``build(tmp)`` in a temporary sibling of ``target``, then replace ``target`` with it (hold its cache lock)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*"):  # a killed builder's; only the lock holder builds
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        build(tmp)
        (tmp / ".complete").write_text("ok\n")
        if target.exists():  # an incomplete or damaged leftover
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def save_tiny_pix2pix(folder: str | Path, seed: int = 0) -> Path:
    """Write the tiny pipeline as a diffusers folder (safetensors) at ``folder``; returns it (idempotent)."""

    def build(tmp: Path) -> None:
        from diffusers import StableDiffusionInstructPix2PixPipeline

        from imgx.models.instruct_pix2pix import quiet_loading

        pipe = StableDiffusionInstructPix2PixPipeline(**tiny_pix2pix_components(seed), requires_safety_checker=False)
        with quiet_loading():
            pipe.save_pretrained(tmp, safe_serialization=True)
        (tmp / "imgx_tiny.json").write_text(json.dumps({"seed": seed, "version": TINY_VERSION, "random_weights": True}))

    return _atomic_dir(Path(folder), build)


def tiny_pix2pix_dir(cache_dir: str | Path, seed: int = 0) -> Path:
    """The cached tiny pipeline folder under ``cache_dir``, built on first use."""
    return save_tiny_pix2pix(Path(cache_dir) / "tiny" / f"instruct-pix2pix-v{TINY_VERSION}-seed{seed}", seed)


def save_tiny_text2image(folder: str | Path, seed: int = 0) -> Path:
    """Write the tiny text-to-image pipeline as a diffusers folder (safetensors) at ``folder`` (idempotent)."""

    def build(tmp: Path) -> None:
        from diffusers import StableDiffusionPipeline

        from imgx.models.instruct_pix2pix import quiet_loading

        pipe = StableDiffusionPipeline(**tiny_text2image_components(seed), image_encoder=None,
                                       requires_safety_checker=False)
        with quiet_loading():
            pipe.save_pretrained(tmp, safe_serialization=True)
        (tmp / "imgx_tiny.json").write_text(json.dumps({"seed": seed, "version": TINY_VERSION, "random_weights": True}))

    return _atomic_dir(Path(folder), build)


def tiny_text2image_dir(cache_dir: str | Path, seed: int = 0) -> Path:
    """The cached tiny text-to-image pipeline folder under ``cache_dir``, built on first use."""
    return save_tiny_text2image(Path(cache_dir) / "tiny" / f"text-to-image-v{TINY_VERSION}-seed{seed}", seed)


def save_tiny_clip(folder: str | Path, seed: int = 0) -> Path:
    """Write a tiny ``CLIPModel`` with its tokenizer and image processor (a CLIPProcessor folder) at ``folder``."""

    def build(tmp: Path) -> None:
        import torch
        from transformers import CLIPModel, CLIPProcessor

        from imgx.models.instruct_pix2pix import quiet_loading

        torch.manual_seed(seed)
        model = CLIPModel(_clip_config())
        with quiet_loading():
            model.save_pretrained(tmp, safe_serialization=True)
        CLIPProcessor(image_processor=_image_processor(), tokenizer=tiny_clip_tokenizer()).save_pretrained(tmp)

    return _atomic_dir(Path(folder), build)
