"""pix2pix and CycleGAN: shapes, the PatchGAN sized for the image, the loops (seeded, NaN named), the image pool."""

import math

import pytest
import torch

from imgx.errors import TrainingDiverged
from imgx.models.cyclegan import CycleGAN
from imgx.models.pix2pix import Pix2Pix, patch_layers, receptive_field
from imgx.train.translation import ImagePool, fit_cyclegan, fit_pix2pix


def _data(n=8, ca=1, cb=3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, ca, size, size, generator=g) * 2 - 1, torch.rand(n, cb, size, size, generator=g) * 2 - 1


def test_unet_and_patchgan_shapes_follow_the_image_size():
    assert [receptive_field(n) for n in (1, 2, 3)] == [16, 34, 70]  # the paper's 70x70 PatchGAN at n=3
    assert (patch_layers(32), patch_layers(128), patch_layers(256)) == (1, 2, 3)
    m = Pix2Pix(1, 3, 16, depth=4, width=4)
    x = torch.zeros(2, 1, 16, 16)
    assert m(x).shape == (2, 3, 16, 16) and m.discriminator(torch.cat([x, m(x)], 1)).shape[1] == 1
    with pytest.raises(ValueError, match="multiple of 32"):
        Pix2Pix(1, 3, 48, depth=5)
    c = CycleGAN(3, 3, 16, width=4, blocks=1)
    assert c.g_ab(torch.zeros(2, 3, 16, 16)).shape == (2, 3, 16, 16)


@pytest.mark.parametrize("loss", ["l1", "gan", "l1+gan"])
def test_pix2pix_loop_is_seeded_and_records_the_loss_terms_it_uses(loss):
    a, b = _data()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        m = Pix2Pix(1, 3, 16, depth=4, width=4, loss=loss)
        runs.append(fit_pix2pix(m, a, b, epochs=2, batch_size=4, lr=2e-4, seed=3,
                                on_epoch=lambda e: {"extra": e}))
    first, again = runs
    assert [r["extra"] for r in first] == [1, 2]
    assert [r["g_loss"] for r in first] == [r["g_loss"] for r in again]
    assert (first[0]["d_loss"] is None) == (loss == "l1") and (first[0]["l1_loss"] is None) == (loss == "gan")


def test_cyclegan_loop_records_cycle_identity_and_both_discriminators():
    a, _ = _data(ca=3)
    _, b = _data(seed=1)
    torch.manual_seed(0)
    h = fit_cyclegan(CycleGAN(3, 3, 16, width=4, blocks=1), a, b, epochs=1, batch_size=4, lr=2e-4, seed=0)
    assert {"g_loss", "gan_loss", "cycle_loss", "identity_loss", "d_a_loss", "d_b_loss", "seconds"} <= set(h[0])
    assert all(math.isfinite(h[0][k]) for k in ("cycle_loss", "d_a_loss"))


def _step_of(image: int, n: int, batch: int, seed: int) -> int:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return int((order == image).nonzero()) // batch


@pytest.mark.parametrize("model", ["pix2pix", "cyclegan"])
def test_a_nan_names_the_epoch_and_the_step(model):
    a, b = _data(ca=3 if model == "cyclegan" else 1)
    a[5] = float("nan")  # one corrupt input poisons the batch it falls in
    torch.manual_seed(0)
    net = Pix2Pix(1, 3, 16, depth=4, width=4) if model == "pix2pix" else CycleGAN(3, 3, 16, width=4, blocks=1)
    fit = fit_pix2pix if model == "pix2pix" else fit_cyclegan
    with pytest.raises(TrainingDiverged) as info:
        fit(net, a, b, epochs=2, batch_size=2, lr=2e-4, seed=7)
    expected = _step_of(5, 8, 2, 7)
    assert (info.value.epoch, info.value.step) == (1, expected) and math.isnan(info.value.loss)
    assert f"epoch 1, step {expected}" in str(info.value)


def test_image_pool_returns_history_once_full():
    pool = ImagePool(2, torch.Generator().manual_seed(0))
    first = pool.query(torch.zeros(2, 1, 2, 2))
    assert torch.equal(first, torch.zeros(2, 1, 2, 2)) and len(pool.images) == 2
    mixed = torch.cat([pool.query(torch.ones(1, 1, 2, 2)) for _ in range(40)])
    assert 0 < (mixed == 0).all(dim=(1, 2, 3)).sum() < 40  # some stored zeros come back, not all
    assert torch.equal(ImagePool(0, torch.Generator()).query(torch.ones(1, 1, 2, 2)), torch.ones(1, 1, 2, 2))
