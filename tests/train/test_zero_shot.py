"""zero_shot_accuracy compares label values with the label of the chosen caption, not with its row index."""

import pytest
import torch

from tests.train.test_diffusion_train import CAPTIONS, _squares


@pytest.fixture(scope="module")
def trained():
    from imgx.models.micro_diffusion import micro_clip, word_tokenizer
    from imgx.train.contrastive import fit_clip

    x, captions = _squares(64, size=16)
    tok = word_tokenizer(CAPTIONS)
    model, _ = micro_clip(tok, image_size=16, seed=0)
    fit_clip(model, x, tok(captions, padding=True, return_tensors="pt").input_ids, epochs=6, batch_size=16, lr=2e-3,
             seed=0)
    return model, x, tok(CAPTIONS, padding=True, return_tensors="pt").input_ids


def test_a_class_list_that_skips_labels_is_scored_by_label_value(trained):
    from imgx.train.contrastive import zero_shot_accuracy

    model, x, class_ids = trained
    rows = torch.arange(64) % 2  # bright squares are row 0 ("a bright square"), dark ones row 1
    assert zero_shot_accuracy(model, x, rows, class_ids) == 1.0
    labels = torch.tensor([3, 5])[rows]  # the same two classes labelled 3 and 5 (classes 0-2 and 4 absent)
    assert zero_shot_accuracy(model, x, labels, class_ids, classes=[3, 5]) == 1.0
    assert zero_shot_accuracy(model, x, torch.tensor([5, 3])[rows], class_ids, classes=[3, 5]) == 0.0
    with pytest.raises(ValueError, match="3 class values for 2 class captions"):
        zero_shot_accuracy(model, x, labels, class_ids, classes=[3, 5, 7])
