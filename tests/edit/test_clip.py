"""CLIP metrics against a direct transformers computation on a tiny CLIP saved to and loaded from disk."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imgx.metrics.clip import (
    ClipEmbedder,
    ClipUnavailable,
    clip_score,
    directional_similarity,
    get_embedder,
    image_similarity,
)


def _images(n: int = 3, size: int = 40) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.fixture(scope="module")
def embedder(tiny_clip_dir) -> ClipEmbedder:
    return ClipEmbedder.load(str(tiny_clip_dir), "cpu")


def _direct(tiny_clip_dir, texts, images):
    """The textbook computation: CLIPProcessor + CLIPModel.forward's normalised embeddings."""
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    processor = CLIPProcessor.from_pretrained(tiny_clip_dir)
    inputs = processor(text=texts, images=images, return_tensors="pt", padding=True, truncation=True)
    with torch.no_grad():
        out = model(**inputs)
    return out.text_embeds, out.image_embeds, out.logits_per_image, model.logit_scale.exp()


def test_clip_score_and_image_similarity_match_transformers(embedder, tiny_clip_dir):
    texts = ["make it a pencil sketch", "a red car", "turn the sky purple"]
    images = _images()
    t, i, logits, scale = _direct(tiny_clip_dir, texts, images)
    ours_t, ours_i = embedder.texts(texts).embeds, embedder.images(images)
    torch.testing.assert_close(ours_t, t / t.norm(dim=-1, keepdim=True), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_i, i / i.norm(dim=-1, keepdim=True), atol=1e-5, rtol=1e-5)
    expected = 100 * (logits.diagonal() / scale).clamp_min(0)
    torch.testing.assert_close(clip_score(ours_i, ours_t), expected, atol=1e-4, rtol=1e-4)
    sim = image_similarity(ours_i, ours_i.flip(0))
    torch.testing.assert_close(sim, (i / i.norm(dim=-1, keepdim=True) * (i / i.norm(dim=-1, keepdim=True))
                                     .flip(0)).sum(-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(image_similarity(ours_i, ours_i), torch.ones(3), atol=1e-5, rtol=1e-5)


def test_directional_similarity_definition():
    e = torch.eye(3)
    # image moved from x to y, caption moved from x to y: same direction
    assert directional_similarity(e[[0]], e[[1]], e[[0]], e[[1]]).item() == pytest.approx(1.0)
    assert directional_similarity(e[[0]], e[[1]], e[[1]], e[[0]]).item() == pytest.approx(-1.0)
    assert directional_similarity(e[[0]], e[[1]], e[[0]], e[[2]]).item() == pytest.approx(0.5)  # 60 degrees


def test_long_captions_are_truncated_with_the_count_recorded(embedder, tiny_clip_dir):
    from transformers import CLIPModel

    long = "a " + "very " * 30 + "long caption"  # one token per character in the tiny byte tokenizer
    out = embedder.texts([long, "short"])
    ids = embedder.tokenizer(long)["input_ids"]
    assert out.tokens[0] == len(ids) > 77 and out.truncated == [True, False]
    # policy: BOS + the first 75 tokens + EOS
    kept = torch.tensor([ids[:76] + [ids[-1]]])
    model = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    with torch.no_grad():
        direct = model(input_ids=kept, pixel_values=torch.zeros(1, 3, 32, 32)).text_embeds
    torch.testing.assert_close(out.embeds[0], (direct / direct.norm())[0], atol=1e-5, rtol=1e-5)


def test_missing_weights_are_unavailable_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    resources: dict = {}
    with pytest.raises(ClipUnavailable, match="not in the local Hugging Face cache"):
        get_embedder("openai/clip-vit-large-patch14", "cpu", resources)
    with pytest.raises(ClipUnavailable):  # the failure is remembered, not retried per case
        get_embedder("openai/clip-vit-large-patch14", "cpu", resources)


def test_pickle_only_clip_folder_is_unavailable(tmp_path):
    from transformers import CLIPModel

    from imgx.models.tiny import _clip_config

    folder = tmp_path / "pickled"
    model = CLIPModel(_clip_config())
    model.save_pretrained(folder)
    for f in folder.glob("*.safetensors"):
        f.unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # what an old pickle checkpoint looks like
    with pytest.raises(ClipUnavailable, match="cannot be loaded"):
        ClipEmbedder.load(str(tmp_path / "pickled"))


def test_clip_score_clamps_each_pair_before_the_mean():
    """One aligned and one anti-aligned pair: per-pair clamping gives 50; torchmetrics' max(mean, 0) would give 0."""
    images = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    texts = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    scores = clip_score(images, texts)
    assert scores.tolist() == [100.0, 0.0]
    assert scores.mean().item() == 50.0
    assert max((100 * torch.nn.functional.cosine_similarity(images, texts)).mean().item(), 0) == 0.0
