"""Trained-here folders: cache hits, damaged caches, bare library loading, and the contrastive CLIP loop."""

from __future__ import annotations

import json

import pytest
import torch

from imgx.models.trained import INFO_FILE, trained_clip, trained_diffusion
from tests.train.test_diffusion_train import CAPTIONS, _squares

RECIPE = {"epochs": 1, "batch_size": 16, "lr": 1e-3, "seed": 0, "vae_epochs": 1}


@pytest.fixture(scope="module")
def t2i(tmp_path_factory):
    x, captions = _squares(16)
    cache = tmp_path_factory.mktemp("trained")
    return cache, x, captions, trained_diffusion("text-to-image", images=x, captions=captions, cache_dir=cache,
                                                 data_label="test squares", **RECIPE)


@pytest.fixture(scope="module")
def ip2p(tmp_path_factory):
    x, captions = _squares(16)
    cache = tmp_path_factory.mktemp("trained")
    return trained_diffusion("instruct-pix2pix", images=-x, cond_images=x, captions=["invert the colors"] * 16,
                             cache_dir=cache, **RECIPE)


def test_trained_folder_records_provenance(t2i):
    _, x, _, model = t2i
    info = json.loads((model.folder / INFO_FILE).read_text())
    assert not model.reused and model.folder.name.startswith("text-to-image-")
    assert info["label"].startswith("trained here on 16 test squares by imgx")
    assert [r["stage"] for r in info["history"]] == ["vae", "denoiser"]
    assert info["recipe"]["epochs"] == 1 and info["recipe"]["dropout"]["drop_text"] == 0.1
    assert "snr_gamma" not in info["recipe"]  # text-to-image keeps plain epsilon MSE (and its cache keys)
    assert info["parameters"]["unet"] > 500_000 and 0 < info["vae_reconstruction_mse"] < 4
    assert info["data_hash"] and info["versions"]["diffusers"]


def test_vae_trains_to_a_target_only_when_asked(t2i, ip2p, tmp_path):
    """By default the VAE runs fixed epochs and the recipe (hence the cache key) is what it was before targets
    existed; with ``vae_target`` it stops at the first epoch whose floor reaches it, and the target is keyed."""
    x, captions = _squares(16)
    assert "vae_target" not in ip2p.info["recipe"] and "vae_target" not in t2i[3].info["recipe"]
    assert ip2p.info["recipe"]["snr_gamma"] == 5.0  # Min-SNR weighting is part of the InstructPix2Pix key
    assert ip2p.info["vae_epochs_run"] == t2i[3].info["vae_epochs_run"] == 1
    assert t2i[3].info["train_cpu_seconds"] > 0 and ip2p.info["vae_seconds"] > 0
    model = trained_diffusion("text-to-image", images=x, captions=captions, cache_dir=tmp_path,
                              **{**RECIPE, "epochs": 0, "vae_epochs": 4}, vae_target=10.0)  # met at once
    assert model.info["recipe"]["vae_target"] == 10.0 and model.info["recipe"]["vae_epochs"] == 4
    assert model.info["vae_epochs_run"] == 1 and model.info["history"][0]["floor"] <= 10.0


def test_cache_hit_reuses_the_folder_without_training(t2i):
    cache, x, captions, model = t2i
    again = trained_diffusion("text-to-image", images=x, captions=captions, cache_dir=cache, **RECIPE)
    assert again.reused and again.folder == model.folder and again.history == model.history
    other = trained_diffusion("text-to-image", images=x, captions=captions[::-1], cache_dir=cache,
                              **{**RECIPE, "epochs": 0, "vae_epochs": 0})
    assert not other.reused and other.folder != model.folder  # other data and recipe, other key


def test_bare_diffusers_loads_and_generates(t2i, ip2p):
    from diffusers import StableDiffusionInstructPix2PixPipeline, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(t2i[3].folder)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(CAPTIONS[0], num_inference_steps=2, guidance_scale=3.0, output_type="pt",
               generator=torch.Generator().manual_seed(0)).images
    assert out.shape == (1, 3, 8, 8) and torch.isfinite(out).all()
    edit = StableDiffusionInstructPix2PixPipeline.from_pretrained(ip2p.folder)
    edit.set_progress_bar_config(disable=True)
    image = torch.rand(1, 3, 8, 8)
    out = edit("invert the colors", image=image, num_inference_steps=2, output_type="pt",
               generator=torch.Generator().manual_seed(0)).images
    assert out.shape == (1, 3, 8, 8) and torch.isfinite(out).all()


@pytest.mark.parametrize("scheduler", ["euler-ancestral", "euler", "ddim", "dpm++-2m", "unipc", "pndm", "lms", "heun"])
def test_every_imgx_scheduler_samples_the_trained_model(t2i, scheduler):
    """4 steps: the fewest PNDM (with its Runge-Kutta warm-up) takes."""
    from diffusers import StableDiffusionPipeline

    from imgx.models import SCHEDULERS

    pipe = StableDiffusionPipeline.from_pretrained(t2i[3].folder)
    pipe.scheduler = SCHEDULERS.get(scheduler).from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(CAPTIONS[1], num_inference_steps=4, output_type="pt", generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.images).all()


def test_imgx_edit_loader_accepts_the_trained_folder(ip2p):
    from imgx.models.instruct_pix2pix import resolve_weights

    folder, info = resolve_weights(str(ip2p.folder), ip2p.folder.parent)
    assert folder == ip2p.folder.resolve() and info["source"] == "folder" and not info["random_weights"]


def test_damaged_cache_is_retrained(tmp_path):
    x, captions = _squares(16)
    first = trained_diffusion("text-to-image", images=x, captions=captions, cache_dir=tmp_path, **RECIPE)
    weights = next((first.folder / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])  # a torn write
    again = trained_diffusion("text-to-image", images=x, captions=captions, cache_dir=tmp_path, **RECIPE)
    assert not again.reused and again.folder == first.folder
    assert weights.stat().st_size > 1000
    third = trained_diffusion("text-to-image", images=x, captions=captions, cache_dir=tmp_path, **RECIPE)
    assert third.reused


def test_fit_clip_improves_retrieval(tmp_path):
    from imgx.metrics.clip import get_embedder
    from imgx.models.micro_diffusion import micro_clip, word_tokenizer
    from imgx.train.contrastive import fit_clip, zero_shot_accuracy

    x, captions = _squares(64, size=16)
    labels = torch.arange(64) % 2
    tok = word_tokenizer(CAPTIONS)
    ids = tok(captions, padding=True, return_tensors="pt").input_ids
    class_ids = tok(CAPTIONS, padding=True, return_tensors="pt").input_ids
    model, _ = micro_clip(tok, image_size=16, seed=0)
    history = fit_clip(model, x, ids, epochs=6, batch_size=16, lr=2e-3, seed=0)
    assert history[-1]["loss"] < history[0]["loss"]
    assert zero_shot_accuracy(model, x, labels, class_ids) == 1.0

    trained = trained_clip(images=x, captions=captions, epochs=6, batch_size=16, lr=2e-3, seed=0, cache_dir=tmp_path,
                           heldout=(x[:16], labels[:16], CAPTIONS))
    assert trained.info["zero_shot_accuracy"] == 1.0 and "CLIP trained here" in trained.info["label"]
    embedder = get_embedder(str(trained.folder), "cpu")
    from PIL import Image

    from imgx.imageio import tensor_to_array

    images = [Image.fromarray(a) for a in tensor_to_array(x[:4])]
    sims = embedder.images(images) @ embedder.texts(CAPTIONS).embeds.T
    assert (sims.argmax(1) == labels[:4]).all()
    big = [im.resize((64, 64)) for im in images]  # the processor resizes to the micro vision tower's 16 px
    assert torch.allclose(embedder.images(big), embedder.images(images), atol=0.05)
    assert trained_clip(images=x, captions=captions, epochs=6, batch_size=16, lr=2e-3, seed=0, cache_dir=tmp_path,
                        heldout=(x[:16], labels[:16], CAPTIONS)).reused
