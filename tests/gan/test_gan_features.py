"""Feature extractors: the cached digits classifier and the torch-fidelity Inception-v3 loading path."""

from __future__ import annotations

import io
import os
from unittest import mock

import pytest
import torch

from imgx.metrics.features import (
    INCEPTION_FILE,
    DigitsClassifierFeatures,
    ExtractorContext,
    FeaturesUnavailable,
    InceptionV3Features,
    build_extractor,
)


def test_classifier_is_accurate_and_its_features_fit_fid(classifier, digits):
    d = classifier.describe()
    assert d["extractor"] == "digits-classifier" and d["dim"] == 64 and d["weights_hash"].startswith("sha256:")
    assert d["classifier_test_accuracy"] > 0.9
    feats = classifier(digits["test"])
    assert feats.shape == (359, 64) and feats.dtype.name == "float64"
    assert torch.linalg.matrix_rank(torch.from_numpy(feats).T.cov()) == 64  # no dead dimensions
    assert (classifier.classify(digits["test"]) == digits["test_labels"]).float().mean() > 0.9


def test_classifier_cache_is_reused_and_rebuilt_when_torn(classifier, digits, _imgx_cache):  # noqa: PT019
    path = classifier.cache_path
    assert os.path.dirname(path).startswith(str(_imgx_cache))
    mtime = os.stat(path).st_mtime_ns
    again = DigitsClassifierFeatures.from_data(digits, seed=0, cache_dir=_imgx_cache)
    assert again.weights_hash == classifier.weights_hash and os.stat(path).st_mtime_ns == mtime


def _subset(digits, n=200, m=60):
    return {"train": digits["train"][:n], "train_labels": digits["train_labels"][:n],
            "test": digits["test"][:m], "test_labels": digits["test_labels"][:m]}


def test_classifier_training_is_deterministic_and_keyed_by_seed(digits, tmp_path):
    data = _subset(digits)
    a = DigitsClassifierFeatures.from_data(data, seed=1, cache_dir=tmp_path / "a", epochs=2)
    b = DigitsClassifierFeatures.from_data(data, seed=1, cache_dir=tmp_path / "b", epochs=2)
    c = DigitsClassifierFeatures.from_data(data, seed=2, cache_dir=tmp_path / "a", epochs=2)
    assert a.weights_hash == b.weights_hash and a.test_accuracy == b.test_accuracy
    assert c.weights_hash != a.weights_hash and c.cache_path != a.cache_path
    # A torn cache file is not trusted: the classifier is retrained and the file rewritten.
    with open(a.cache_path, "wb") as fh:
        fh.write(b"torn")
    d = DigitsClassifierFeatures.from_data(data, seed=1, cache_dir=tmp_path / "a", epochs=2)
    assert d.weights_hash == a.weights_hash and os.path.getsize(a.cache_path) > 1000


def test_classifier_needs_labels(digits, tmp_path):
    data = {**_subset(digits), "train_labels": None}
    with pytest.raises(FeaturesUnavailable, match="labelled training split"):
        build_extractor("digits-classifier", {}, ExtractorContext(data=data, cache_dir=tmp_path))


@pytest.fixture(scope="module")
def random_inception(tmp_path_factory):
    """An Inception-v3 state dict with random weights, saved as torch-fidelity's .pth would be.

    The real weights cannot be fetched offline; building the architecture needs a state dict, so its own
    ``load_state_dict`` is skipped once here. Everything after (reading, verifying, loading) is the real path.
    """
    import torch_fidelity  # noqa: F401 - a hard dependency: a broken install fails, never skips
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torchmetrics.image.fid import NoTrainInceptionV3

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    torch.manual_seed(0)
    with mock.patch.object(FeatureExtractorInceptionV3, "load_state_dict"):
        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                 feature_extractor_weights_path=empty)
    path = tmp_path_factory.mktemp("inception") / INCEPTION_FILE
    torch.save(net.state_dict(), path)
    return path


def test_inception_loads_weights_and_matches_torchmetrics_features(random_inception, digits):
    from torchmetrics.image.fid import NoTrainInceptionV3

    ex = build_extractor("inception-v3", {"weights": str(random_inception)}, ExtractorContext())
    d = ex.describe()
    assert d["dim"] == 2048 and d["weights_hash"].startswith("sha256:") and "299" in d["resize"]
    images = digits["test"][:3]
    ours = ex(images)
    reference = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                   feature_extractor_weights_path=str(random_inception))
    uint8 = images.add(1).mul(127.5).round().to(torch.uint8).repeat(1, 3, 1, 1)
    assert ours.shape == (3, 2048)
    assert torch.allclose(torch.from_numpy(ours).float(), reference(uint8), atol=1e-5)


def test_inception_unavailable_offline_or_missing(tmp_path, monkeypatch):
    import torch_fidelity  # noqa: F401 - a hard dependency: a broken install fails, never skips
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FeaturesUnavailable,
                       match=r"not in the torch hub cache and HF_HUB_OFFLINE is set.*weights: PATH"):
        InceptionV3Features()
    with pytest.raises(FeaturesUnavailable, match="not found at"):
        InceptionV3Features(tmp_path / "nope.pth")


def test_inception_refuses_pickled_code(tmp_path):
    import torch_fidelity  # noqa: F401 - a hard dependency: a broken install fails, never skips
    path = tmp_path / "evil.pth"
    torch.save({"weights": torch.zeros(1), "hook": os.getcwd}, path)  # a function: not a plain state dict
    with pytest.raises(FeaturesUnavailable, match="not a plain tensor state dict"):
        InceptionV3Features(path)


class _CountingExtractor(DigitsClassifierFeatures):
    """The real digits classifier, counting the batches it embeds."""

    def embed(self, images):
        self.batches += 1
        return super().embed(images)


def test_a_set_embedded_before_is_remembered_not_embedded_again(classifier, digits):
    from imgx.metrics import features

    features._MEMO.clear()  # other tests in this process may have embedded the same set
    ex = _CountingExtractor(classifier.model, test_accuracy=classifier.test_accuracy, seed=0)
    ex.batches = 0
    test = digits["test"].clone()
    first = ex(test)
    embedded = ex.batches
    again = ex(test.clone())  # equal bytes, another tensor
    assert ex.batches == embedded and (again == first).all()
    again[0, 0] = 123.0  # the caller's copy: the remembered features are untouched
    assert (ex(test) == first).all() and ex.batches == embedded
    other = test.clone()
    other[0, 0, 0, 0] = -other[0, 0, 0, 0] - 0.5  # one pixel differs: embedded anew
    assert not (ex(other) == first).all() and ex.batches > embedded
    # another weights hash is another extractor; an extractor without one (custom weights) is never remembered
    ex.weights_hash = "sha256:0000000000000000"
    count = ex.batches
    ex(test)
    assert ex.batches > count
    ex.weights_hash = ""
    count = ex.batches
    ex(test)
    ex(test)
    assert ex.batches == count + 2 * -(-len(test) // ex.batch_size)
    assert sum(f.nbytes for f in features._MEMO.values()) <= features.MEMO_BYTES
