"""Packed parameters (imgx.train.flat): the same weights as the per-tensor optimizer, bit for bit, and clean release."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from imgx.models.micro_diffusion import micro_components, word_tokenizer
from imgx.train.flat import FlatParameters


def _denoiser():
    tok = word_tokenizer(["make it darker", "flip it"])
    parts = micro_components("instruct-pix2pix", image_size=16, tokenizer=tok, seed=0)
    ids = tok(["make it darker", "flip it"] * 4, padding="max_length", max_length=tok.model_max_length,
              return_tensors="pt").input_ids
    return parts["unet"], parts["text_encoder"], ids


def _train(unet, text_encoder, ids, *, packed: bool, steps: int = 6) -> None:
    params = [*unet.parameters(), *text_encoder.parameters()]
    flat = FlatParameters(params) if packed else None
    opt = torch.optim.AdamW([flat.param] if packed else params, lr=2e-3, weight_decay=0.0, foreach=True)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x, t = torch.randn(8, 8, 8, 8, generator=g), torch.randint(0, 1000, (8,), generator=g)
        # A large loss, so the clipping at norm 1 is in play on every step.
        loss = 100 * unet(x, t, encoder_hidden_states=text_encoder(ids)[0]).sample.square().mean()
        if packed:
            flat.zero_grad()
            loss.backward()
            norm = flat.clip_grad_norm_(1.0)
        else:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        assert norm > 1.0
        opt.step()
    if packed:
        flat.release()


def test_packed_training_gives_bitwise_the_same_weights_as_per_tensor():
    unet, text_encoder, ids = _denoiser()
    reference = (copy.deepcopy(unet), copy.deepcopy(text_encoder))
    _train(*reference, ids, packed=False)
    _train(unet, text_encoder, ids, packed=True)
    pairs = [*zip(reference[0].state_dict().items(), unet.state_dict().items(), strict=True),
             *zip(reference[1].state_dict().items(), text_encoder.state_dict().items(), strict=True)]
    assert len(pairs) > 200
    for (name, want), (_, got) in pairs:
        assert torch.equal(want, got), name
    untrained = _denoiser()[0].state_dict()
    assert sum(not torch.equal(v, untrained[k]) for k, v in unet.state_dict().items()) > 100  # they did train


def test_release_gives_each_parameter_its_own_storage(tmp_path):
    unet, text_encoder, ids = _denoiser()
    _train(unet, text_encoder, ids, packed=True, steps=1)
    storages = {p.untyped_storage().data_ptr() for p in [*unet.parameters(), *text_encoder.parameters()]}
    assert len(storages) == len(list(unet.parameters())) + len(list(text_encoder.parameters()))
    assert all(p.grad is None for p in unet.parameters())
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, tmp_path / "unet.safetensors")


def test_packing_keeps_the_values_and_links_the_views():
    layer = nn.Linear(3, 2)
    before = [p.detach().clone() for p in layer.parameters()]
    flat = FlatParameters(layer.parameters())
    assert all(torch.equal(p, b) for p, b in zip(layer.parameters(), before, strict=True))
    flat.param.zero_()
    assert all(not p.any() for p in layer.parameters())
    layer(torch.ones(1, 3)).sum().backward()
    assert torch.equal(flat.grad[:6], torch.ones(6))  # the weight's gradient landed in the packed buffer


@pytest.mark.parametrize(("params", "message"), [
    ([], "no parameters"),
    ([nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2, dtype=torch.float64))], "one dtype"),
])
def test_packing_refuses_what_cannot_share_one_buffer(params, message):
    with pytest.raises(ValueError, match=message):
        FlatParameters(params)


def test_packing_refuses_a_parameter_twice():
    p = nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="twice"):
        FlatParameters([p, p])
