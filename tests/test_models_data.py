"""Colorizer architecture as the recipe states, and the embedded photo data (held out, deterministic)."""

import torch

from imgx.data.photos import load
from imgx.models.colorizer import EncoderDecoder, UNetColorizer
from imgx.suite.schema import DataSpec


def test_encoder_decoder_is_the_recipe():
    model = EncoderDecoder()
    convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride) for c in convs] == [(1, 32, (2, 2)), (32, 64, (2, 2))]
    deconvs = [m for m in model.decoder if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels, c.stride) for c in deconvs] == [(64, 32, (2, 2)), (32, 3, (2, 2))]
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    assert model.encoder(x).shape == (2, 64, 8, 8)
    y = model(x)
    assert y.shape == (2, 3, 32, 32) and y.abs().max() <= 1
    assert UNetColorizer()(x).shape == (2, 3, 32, 32)


def test_photos_are_held_out_and_deterministic():
    spec = DataSpec(name="photos", image_size=16, train=64, test=16)
    a, b = load(spec, 3, "colorize"), load(spec, 3, "colorize")
    assert torch.equal(a["train"], b["train"]) and torch.equal(a["test"], b["test"])
    assert not set(a["info"]["train_photos"]) & set(a["info"]["test_photos"])
    assert a["train"].shape == (64, 3, 16, 16) and a["train"].min() >= -1 and a["train"].max() <= 1
    c = load(spec, 4, "colorize")
    assert not torch.equal(a["train"], c["train"])


def test_photos_for_editing_are_whole_squares():
    data = load(DataSpec(name="photos", image_size=64, count=3), 0, "edit")
    assert [im.size for im in data["images"]] == [(64, 64)] * 3
    assert data["paths"][0] == "skimage.data:astronaut"
