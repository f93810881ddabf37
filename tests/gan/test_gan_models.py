"""The DCGAN and its training loop: shapes, ranges, determinism, divergence."""

from __future__ import annotations

import math

import pytest
import torch

from imgx.errors import TrainingDiverged
from imgx.models.dcgan import DCGAN
from imgx.train.adversarial import fit_gan


def test_shapes_and_ranges():
    torch.manual_seed(0)
    model = DCGAN(latent_dim=100).eval()
    z = model.noise(5, torch.Generator().manual_seed(0))
    assert z.shape == (5, 100)
    x = model.sample(z)
    assert x.shape == (5, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    p = model.discriminator(x)
    assert p.shape == (5,) and ((p >= 0) & (p <= 1)).all()
    assert torch.allclose(p, torch.sigmoid(model.discriminator.logits(x)))
    with pytest.raises(ValueError, match="multiple of 4"):
        DCGAN(image_size=30)


def _train(images, seed, epochs=2):
    torch.manual_seed(seed)
    model = DCGAN()
    history = fit_gan(model, images, epochs=epochs, batch_size=32, lr=2e-4, seed=seed)
    return model, history


def test_training_is_deterministic_and_seeded(digits):
    images = digits["train"][:96]
    m1, h1 = _train(images, 3)
    m2, h2 = _train(images, 3)
    m3, h3 = _train(images, 4)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in h1]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in h2]
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True))
    assert [r["g_loss"] for r in h1] != [r["g_loss"] for r in h3]
    assert [r["epoch"] for r in h1] == [1, 2]
    for row in h1:
        assert {"d_loss", "g_loss", "d_acc_real", "d_acc_fake", "seconds"} <= set(row)
        assert 0 <= row["d_acc_real"] <= 1 and 0 <= row["d_acc_fake"] <= 1
        assert math.isfinite(row["d_loss"]) and row["d_loss"] > 0


def test_on_epoch_rows_are_merged(digits):
    torch.manual_seed(0)
    model = DCGAN()
    seen = []
    history = fit_gan(model, digits["train"][:64], epochs=2, batch_size=32, lr=2e-4, seed=0,
                      on_epoch=lambda e: seen.append(e) or {"extra": e * 10})
    assert seen == [1, 2] and [r["extra"] for r in history] == [10, 20]


def test_non_finite_loss_raises_training_diverged(digits):
    images = digits["train"][:64].clone()
    images[3] = float("nan")  # one corrupt image poisons the first discriminator loss
    torch.manual_seed(0)
    with pytest.raises(TrainingDiverged) as info:
        fit_gan(DCGAN(), images, epochs=2, batch_size=64, lr=2e-4, seed=0)
    assert (info.value.epoch, info.value.step) == (1, 0) and math.isnan(info.value.loss)
    assert "epoch 1, step 0" in str(info.value)
