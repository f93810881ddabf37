"""The ``untrained`` reference of ``weights: train``: the trained model's own initial weights, per scheduler."""

from __future__ import annotations

import torch

from imgx.tasks.text_to_image import untrained_pipeline

RECIPE = {"image_size": 16, "seed": 3}


def _saved_after_training(tmp_path):
    """A micro text-to-image folder whose weights moved away from their initialisation, as training moves them."""
    from diffusers import StableDiffusionPipeline

    from imgx.models.micro_diffusion import micro_components, word_tokenizer

    parts = micro_components("text-to-image", image_size=16, tokenizer=word_tokenizer(["a digit 1", "a digit 2"]),
                             seed=RECIPE["seed"])
    initial = {name: {k: v.clone() for k, v in parts[name].state_dict().items()}
               for name in ("unet", "vae", "text_encoder")}
    with torch.no_grad():
        for name in initial:
            for p in parts[name].parameters():
                p.add_(0.5)
    parts.pop("noise_scheduler")
    StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(tmp_path, safe_serialization=True)
    return tmp_path, initial, parts["scheduler"]


def test_untrained_reference_has_the_trained_models_initial_weights(tmp_path):
    folder, initial, scheduler = _saved_after_training(tmp_path)
    pipe = untrained_pipeline(folder, RECIPE, scheduler, "cpu", {})
    for name, weights in initial.items():
        now = getattr(pipe, name).state_dict()
        assert now.keys() == weights.keys()
        for k, v in weights.items():
            torch.testing.assert_close(now[k], v, rtol=0, atol=0, msg=f"{name}.{k}")
    # the token embeddings carry the micro recipe's scaling (CLIP's own init has std 0.02)
    assert pipe.text_encoder.get_input_embeddings().weight.std() > 0.1


def test_each_scheduler_gets_its_own_untrained_pipeline(tmp_path):
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    folder, _, scheduler = _saved_after_training(tmp_path)
    resources: dict = {}
    ddim = untrained_pipeline(folder, RECIPE, DDIMScheduler.from_config(scheduler.config), "cpu", resources)
    euler = untrained_pipeline(folder, RECIPE, EulerDiscreteScheduler.from_config(scheduler.config), "cpu",
                               resources)
    assert isinstance(ddim.scheduler, DDIMScheduler) and isinstance(euler.scheduler, EulerDiscreteScheduler)
    assert euler.unet is ddim.unet  # the components are built once
    again = untrained_pipeline(folder, RECIPE, DDIMScheduler.from_config(scheduler.config), "cpu", resources)
    assert again is ddim
