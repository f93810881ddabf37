"""The micro diffusion components and the one latent-diffusion loop, on tiny real data (8x8 images)."""

from __future__ import annotations

import pytest
import torch

from imgx.errors import TrainingDiverged
from imgx.models.micro_diffusion import micro_components, word_tokenizer
from imgx.train.diffusion import fit_autoencoder, fit_denoiser, reconstruction_mse

CAPTIONS = ["a bright square", "a dark square"]


def _squares(n: int = 32, size: int = 8, seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """Two classes with a learnable link between caption and image: bright or dark squares with noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    base = torch.where(labels[:, None, None, None] == 0, 0.7, -0.7)
    x = (base + 0.1 * torch.randn(n, 3, size, size, generator=g)).clamp(-1, 1)
    return x, [CAPTIONS[int(k)] for k in labels]


def _ids(tok, captions):
    return tok(captions, padding="max_length", max_length=tok.model_max_length, truncation=True,
               return_tensors="pt").input_ids


def test_word_tokenizer_whole_words_fallback_and_round_trip(tmp_path):
    from transformers import CLIPTokenizer

    captions = [f"a handwritten digit {i}" for i in range(10)] + ["Make it grayscale", "invert the colors"]
    tok = word_tokenizer(captions)
    assert tok.tokenize("a handwritten digit 7") == ["a</w>", "handwritten</w>", "digit</w>", "7</w>"]
    assert tok.tokenize("MAKE it Grayscale") == ["make</w>", "it</w>", "grayscale</w>"]  # lower-cased as CLIP
    unseen = tok("zebra quokka").input_ids
    assert tok.unk_token_id not in unseen[1:-1]  # byte fallback, no unknown tokens
    assert unseen[0] == tok.bos_token_id and unseen[-1] == tok.eos_token_id
    long = tok("digit " * 200, truncation=True).input_ids
    # The context fits the longest caption (6 tokens with BOS and EOS) rounded up to 8; longer prompts truncate.
    assert len(long) == tok.model_max_length == 8 and long[-1] == tok.eos_token_id
    assert word_tokenizer(captions + ["one two three four five six seven"]).model_max_length == 16
    assert word_tokenizer(["word " * 100]).model_max_length == 77  # never past CLIP's context
    assert word_tokenizer(captions, max_length=77).model_max_length == 77
    tok.save_pretrained(tmp_path)
    again = CLIPTokenizer.from_pretrained(tmp_path)
    for text in ["a handwritten digit 3", "invert the colors!", "zebra"]:
        assert again(text).input_ids == tok(text).input_ids


def test_micro_component_sizes():
    tok = word_tokenizer(CAPTIONS)
    parts = micro_components("instruct-pix2pix", image_size=16, tokenizer=tok, seed=0)
    count = {k: sum(p.numel() for p in parts[k].parameters()) for k in ("unet", "vae", "text_encoder")}
    assert 0.8e6 < count["unet"] < 1.3e6 and 120e3 < count["vae"] < 200e3 and count["text_encoder"] < 60e3
    assert parts["unet"].config.in_channels == 8
    assert parts["noise_scheduler"].config.beta_schedule == "scaled_linear"
    t2i = micro_components("text-to-image", image_size=16, tokenizer=tok, seed=0)
    assert t2i["unet"].config.in_channels == 4
    with pytest.raises(ValueError, match="unknown kind"):
        micro_components("inpaint", image_size=16, tokenizer=tok, seed=0)


def test_autoencoder_learns_and_sets_scaling_factor():
    x, _ = _squares()
    parts = micro_components("text-to-image", image_size=8, tokenizer=word_tokenizer(CAPTIONS), seed=0)
    vae = parts["vae"]
    before = reconstruction_mse(vae, x)
    history = fit_autoencoder(vae, x, epochs=4, batch_size=8, lr=2e-3, seed=0)
    assert [r["stage"] for r in history] == ["vae"] * 4
    assert history[-1]["recon_mse"] < history[0]["recon_mse"]
    assert reconstruction_mse(vae, x) < before
    assert vae.config.scaling_factor != 1.0 and vae.config.scaling_factor > 0


def test_autoencoder_stops_at_its_reconstruction_target():
    x, _ = _squares()

    def vae():
        return micro_components("text-to-image", image_size=8, tokenizer=word_tokenizer(CAPTIONS), seed=0)["vae"]

    full = fit_autoencoder(vae(), x, epochs=5, batch_size=8, lr=2e-3, seed=0, target_mse=0.0)  # never reached
    floors = [r["floor"] for r in full]
    assert len(full) == 5 and floors[-1] < floors[0]
    target = floors[2]
    first = next(i for i, f in enumerate(floors) if f <= target)  # the same seeded run reaches it there
    early = vae()
    history = fit_autoencoder(early, x, epochs=5, batch_size=8, lr=2e-3, seed=0, target_mse=target)
    assert len(history) == first + 1 and history[-1]["floor"] <= target
    assert reconstruction_mse(early, x) < reconstruction_mse(vae(), x)  # trained, and scaled as usual
    assert early.config.scaling_factor != 1.0
    assert "floor" not in fit_autoencoder(vae(), x, epochs=1, batch_size=8, lr=2e-3, seed=0)[0]


@pytest.mark.parametrize("kind", ["text-to-image", "instruct-pix2pix"])
def test_denoiser_loss_decreases(kind):
    x, captions = _squares()
    tok = word_tokenizer(CAPTIONS)
    parts = micro_components(kind, image_size=8, tokenizer=tok, seed=0)
    fit_autoencoder(parts["vae"], x, epochs=1, batch_size=16, lr=2e-3, seed=0)
    cond = -x if kind == "instruct-pix2pix" else None
    drops = {"drop_text": 0.05, "drop_image": 0.05, "drop_both": 0.05} if cond is not None else {}
    history = fit_denoiser(parts["unet"], parts["text_encoder"], parts["vae"], parts["noise_scheduler"], x,
                           _ids(tok, captions), cond_images=cond, epochs=6, batch_size=8, lr=1e-3, seed=0,
                           uncond_ids=_ids(tok, [""]), **drops)
    losses = [r["loss"] for r in history]
    assert all(r["stage"] == "denoiser" for r in history)
    assert min(losses[-2:]) < losses[0]


def test_denoiser_checks_its_arguments():
    x, captions = _squares(8)
    tok = word_tokenizer(CAPTIONS)
    parts = micro_components("text-to-image", image_size=8, tokenizer=tok, seed=0)
    args = (parts["unet"], parts["text_encoder"], parts["vae"], parts["noise_scheduler"], x, _ids(tok, captions))
    with pytest.raises(ValueError, match="uncond_ids"):
        fit_denoiser(*args, epochs=1, batch_size=8, lr=1e-3, seed=0)
    with pytest.raises(ValueError, match="cond_images"):
        fit_denoiser(*args, epochs=1, batch_size=8, lr=1e-3, seed=0, uncond_ids=_ids(tok, [""]), drop_image=0.1)


def test_non_finite_loss_raises_training_diverged():
    x, captions = _squares(8)
    tok = word_tokenizer(CAPTIONS)
    parts = micro_components("text-to-image", image_size=8, tokenizer=tok, seed=0)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(TrainingDiverged) as info:
        fit_autoencoder(parts["vae"], bad, epochs=1, batch_size=8, lr=1e-3, seed=0)
    assert (info.value.epoch, info.value.step) == (1, 0)
    with torch.no_grad():
        parts["unet"].conv_out.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="epoch 1, step 0"):
        fit_denoiser(parts["unet"], parts["text_encoder"], parts["vae"], parts["noise_scheduler"], x,
                     _ids(tok, captions), epochs=1, batch_size=8, lr=1e-3, seed=0, uncond_ids=_ids(tok, [""]))


def test_denoiser_is_deterministic():
    x, captions = _squares(16)
    tok = word_tokenizer(CAPTIONS)
    runs = []
    for _ in range(2):
        parts = micro_components("text-to-image", image_size=8, tokenizer=tok, seed=3)
        parts["vae"].register_to_config(scaling_factor=0.5)
        runs.append(fit_denoiser(parts["unet"], parts["text_encoder"], parts["vae"], parts["noise_scheduler"], x,
                                 _ids(tok, captions), epochs=2, batch_size=8, lr=1e-3, seed=3,
                                 uncond_ids=_ids(tok, [""])))
    assert [r["loss"] for r in runs[0]] == [r["loss"] for r in runs[1]]


def test_min_snr_weights_follow_the_paper():
    from diffusers.training_utils import compute_snr

    from imgx.train.diffusion import min_snr_weights

    parts = micro_components("text-to-image", image_size=8, tokenizer=word_tokenizer(CAPTIONS), seed=0)
    t = torch.tensor([0, 10, 100, 400, 999])
    snr = compute_snr(parts["noise_scheduler"], t)
    weights = min_snr_weights(parts["noise_scheduler"], t, 5.0)
    assert snr[0] > 5 > snr[-1]  # the schedule spans both sides of gamma
    assert torch.allclose(weights, torch.where(snr > 5, 5 / snr, torch.ones_like(snr)))
    assert weights[0] < 0.01 and weights[-1] == 1.0


def test_min_snr_weighting_changes_the_loss_and_a_large_gamma_does_not():
    x, captions = _squares(16)
    tok = word_tokenizer(CAPTIONS)

    def run(gamma):
        parts = micro_components("text-to-image", image_size=8, tokenizer=tok, seed=3)
        parts["vae"].register_to_config(scaling_factor=0.5)
        return [r["loss"] for r in fit_denoiser(parts["unet"], parts["text_encoder"], parts["vae"],
                                                parts["noise_scheduler"], x, _ids(tok, captions), epochs=2,
                                                batch_size=8, lr=1e-3, seed=3, uncond_ids=_ids(tok, [""]),
                                                snr_gamma=gamma)]

    plain = run(None)
    assert run(1e12) == pytest.approx(plain, rel=1e-5)  # every weight is 1
    assert run(5.0)[0] < plain[0]  # low-noise steps weigh less
