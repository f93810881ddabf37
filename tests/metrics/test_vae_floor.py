"""The vae-floor row is the error of the VAE round trip of the target, not a bound on what outputs can reach."""

import numpy as np
import torch

from imgx.metrics.ground_truth import Scored, ground_truth_rows
from imgx.tasks.edit_truth import vae_floor


def test_a_decoded_latent_can_beat_the_round_trip_so_the_detail_claims_no_bound():
    from imgx.models.micro_diffusion import micro_vae

    vae = micro_vae(seed=0).eval()
    target = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    (round_trip,) = vae_floor(vae, [target])
    x = torch.from_numpy(target[None]).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
    z = z.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.05)
    for _ in range(40):  # another latent, decoded by the same VAE, nearer the target than the round trip
        opt.zero_grad()
        loss = ((vae.decode(z).sample.clamp(-1, 1) + 1) / 2 - (x + 1) / 2).pow(2).mean()
        loss.backward()
        opt.step()
    assert loss.item() < 0.9 * round_trip

    item = Scored(target, target, target, "make it darker", "a")
    (row,) = [r for r in ground_truth_rows(["target_mse"], [item], 0, floor_mse=[round_trip])
              if r.reference == "vae-floor" and r.metric == "target_mse"]
    assert row.value == round_trip
    assert "round trip of the target" in row.detail and "not a bound" in row.detail
    assert "can be expected nearer" not in row.detail
