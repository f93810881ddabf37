"""Metric metadata, declared once; reports, gates and comparisons read it from here.

Computation lives in the submodules (pixel, frechet, clip, timing); this module imports no torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from imgx.registry import Registry

# What a reference row means, by its name, for every metric unless the metric says otherwise (``references``):
# ``floor``: what a useful model must beat (a value on its wrong side is flagged "worse than");
# ``ceiling``: the best to expect (the true target, real images against real images);
# ``bound``: an extreme the metric reaches by construction (not something to beat: never flagged);
# ``context``: shown for orientation only.
REFERENCE_ROLES = {"gray-copy": "floor", "untrained": "floor", "identity": "floor", "oracle": "ceiling",
                   "real-split": "ceiling", "vae-floor": "bound", "input-copy": "context"}


@dataclass(frozen=True)
class MetricInfo:
    """What a metric means: display name, unit, direction, kind, and what its reference rows mean.

    ``higher_means`` is set for a metric where neither direction is better by itself (a trade-off such as how
    much of the input an edit keeps): it says what a higher value means, and such a metric is not judged against
    floors nor gated by ``compare`` unless a suite names it. ``references`` overrides :data:`REFERENCE_ROLES`
    for this metric as ``((reference, role), ...)``.
    """

    name: str
    display: str
    unit: str
    higher_is_better: bool
    kind: str  # full-reference | no-reference | distribution | timing | memory | cost (exact counts)
    tasks: frozenset[str]
    requestable: bool = True  # False for rows a task always emits (train_seconds) or that come with another
    quality: bool = True  # False for timing and memory: compared only on the same machine
    options: frozenset[str] = frozenset()  # keys accepted under metric_options.<name>
    higher_means: str = ""
    references: tuple[tuple[str, str], ...] = ()

    @property
    def direction(self) -> str:
        """``"higher"`` or ``"lower"`` is better."""
        return "higher" if self.higher_is_better else "lower"

    @property
    def better(self) -> str:
        """``"higher"``, ``"lower"``, or ``"neither"`` for a trade-off metric (``higher_means`` set)."""
        return "neither" if self.higher_means else self.direction

    @property
    def direction_text(self) -> str:
        """What a reader needs to read a change: ``higher is better``, or what a higher value means."""
        if self.higher_means:
            return f"higher = {self.higher_means}; neither is better by itself"
        return f"{self.direction} is better"

    def reference_role(self, reference: str) -> str:
        """``floor``, ``ceiling``, ``bound`` or ``context`` (see :data:`REFERENCE_ROLES`; unknown: ``context``)."""
        return dict(self.references).get(reference) or REFERENCE_ROLES.get(reference, "context")


METRICS = Registry("metric")


def _metric(name, display, unit, higher, kind, tasks, requestable=True, quality=True, options=(), higher_means="",
            references=None):
    info = MetricInfo(name, display, unit, higher, kind, frozenset(tasks), requestable, quality, frozenset(options),
                      higher_means, tuple((references or {}).items()))
    METRICS.register(name, info, help=f"{display} ({info.direction_text})")


_ALL = {"colorize", "generate", "edit", "translate", "text-to-image"}
_metric("mse", "MSE", "", False, "full-reference", {"colorize", "edit", "translate"})
_metric("psnr", "PSNR", "dB", True, "full-reference", {"colorize", "edit", "translate"})
_metric("ssim", "SSIM", "", True, "full-reference", {"colorize", "edit", "translate"})
_metric("fid", "FID", "", False, "distribution", {"generate", "translate", "text-to-image"},
        options={"features", "weights", "seed", "bootstrap"})
_metric("kid", "KID", "", False, "distribution", {"generate", "translate", "text-to-image"},
        options={"features", "weights", "seed", "subsets", "subset_size", "degree"})
_metric("clip_score", "CLIP score", "", True, "no-reference", {"edit", "text-to-image"}, options={"model"})
_metric("prompt_accuracy", "prompt accuracy", "", True, "no-reference", {"text-to-image"},
        options={"classifier"})
_metric("clip_image_similarity", "CLIP image similarity", "", True, "full-reference", {"edit"}, options={"model"})
_metric("clip_directional_similarity", "CLIP directional similarity", "", True, "full-reference", {"edit"},
        options={"model", "derive_captions"})
_metric("latency", "latency (p50, p90, per step, per stage)", "ms", False, "timing", _ALL, quality=False)
_metric("latency_ms_p50", "latency p50", "ms", False, "timing", _ALL, requestable=False, quality=False)
_metric("latency_ms_p90", "latency p90", "ms", False, "timing", _ALL, requestable=False, quality=False)
_metric("seconds_per_step", "seconds per denoising step", "s", False, "timing", {"edit", "text-to-image"},
        requestable=False, quality=False)
_metric("images_per_second", "images per second", "img/s", True, "timing", _ALL, requestable=False, quality=False)
_metric("sweep_images_per_second", "batched sweep throughput", "img/s", True, "timing", {"edit", "text-to-image"},
        requestable=False, quality=False)
_metric("speedup", "speed-up vs the reference combination", "x", True, "timing", {"edit"}, requestable=False,
        quality=False)
_metric("peak_memory_mb", "peak memory", "MB", False, "memory", _ALL, requestable=False, quality=False)
# Edit and text-to-image report training time only for a model trained here (weights: train; see suite.preflight).
_metric("train_seconds", "training time", "s", False, "timing",
        {"colorize", "generate", "translate", "text-to-image", "edit"}, requestable=False, quality=False)
_metric("train_images_per_second", "training throughput", "img/s", True, "timing",
        {"colorize", "generate", "translate", "text-to-image"}, requestable=False, quality=False)
# Counts of one real call (imgx.metrics.cost): the same on any machine, so compared exactly. ``cost`` asks for them
# without timing; ``latency`` brings them too. CUDA peak allocation depends on the GPU and torch: like machines only.
_metric("cost", "cost (FLOPs, parameters, model evaluations, CUDA peak allocation)", "", False, "cost", _ALL)
_metric("flops_per_image", "forward FLOPs per image", "FLOP", False, "cost", _ALL, requestable=False)
_metric("parameters", "parameters", "", False, "cost", _ALL, requestable=False)
_metric("model_evaluations_per_image", "UNet evaluations per image", "", False, "cost", {"edit", "text-to-image"},
        requestable=False)
_metric("cuda_peak_allocated_mb", "CUDA peak allocated memory of one call", "MB", False, "cost", _ALL,
        requestable=False, quality=False)
_metric("cycle_mse_aba", "cycle error A->B->A (MSE)", "", False, "full-reference", {"translate"}, requestable=False)
_metric("cycle_mse_bab", "cycle error B->A->B (MSE)", "", False, "full-reference", {"translate"}, requestable=False)

# Against a known truth: the true edit (imgx.metrics.ground_truth; photo-edits, edit-csv target column) and
# translate's hidden style truth (photo-styles).
_metric("target_mse", "MSE to the true target", "", False, "full-reference", {"edit", "translate"})
_metric("target_psnr", "PSNR to the true target", "dB", True, "full-reference", {"edit", "translate"})
_metric("target_ssim", "SSIM to the true target", "", True, "full-reference", {"edit", "translate"})
# How much of the input an edit keeps: a trade-off, not a quality. Its identity row (the input itself) is 1.0 by
# construction and its oracle row is what the true edit keeps.
_metric("input_ssim", "SSIM to the input", "", True, "full-reference", {"edit"},
        higher_means="more of the input kept (a weaker edit)", references={"identity": "bound", "oracle": "context"})
_metric("instruction_accuracy", "instruction accuracy", "", True, "full-reference", {"edit"})

# task: score computes these from folders of images made elsewhere (imgx.tasks.score).
for _name in ("mse", "psnr", "ssim", "target_mse", "target_psnr", "target_ssim", "input_ssim", "fid", "kid",
              "clip_score", "clip_image_similarity", "prompt_accuracy"):
    _entry = METRICS.entry(_name)
    _entry.target = dataclasses.replace(_entry.target, tasks=_entry.target.tasks | {"score"})

FEATURE_EXTRACTORS = Registry("feature extractor")
FEATURE_EXTRACTORS.register("inception-v3", "imgx.metrics.features:InceptionV3Features",
                            help="torch-fidelity Inception-v3 pool features (2048-d), the FID standard")
FEATURE_EXTRACTORS.register("digits-classifier", "imgx.metrics.features:DigitsClassifierFeatures",
                            help="small CNN trained on the embedded digits; domain FID that works offline")
FEATURE_EXTRACTORS.register("efficientnet-lite0", "imgx.metrics.features:EfficientNetLite0Features",
                            help="ImageNet EfficientNet-Lite0 pooled features (1280-d), offline from the optional "
                                 "'features' extra; not comparable to Inception FID")


def per_part(name: str) -> tuple[str, str] | None:
    """``("target_mse", "invert")`` for a row of a per-part metric (``target_mse[invert]``), else ``None``."""
    base, bracket, part = name.partition("[")
    if bracket and len(part) > 1 and part.endswith("]") and base in METRICS and name not in METRICS:
        return base, part[:-1]
    return None


def metric_info(name: str) -> MetricInfo:
    """Metadata for a metric name; per-stage latency rows (``latency_ms_<stage>``) share latency's."""
    if name.startswith("latency_ms_") and name not in METRICS:
        return MetricInfo(name, name.replace("_", " "), "ms", False, "timing", frozenset(_ALL), False, False)
    row = per_part(name)
    if row:  # per part: target_mse[invert]
        from dataclasses import replace

        info = METRICS.get(row[0])
        return replace(info, name=name, display=f"{info.display} ({row[1]})", requestable=False)
    return METRICS.get(name)


def reference_role(metric: str, reference: str) -> str:
    """What ``reference`` means for ``metric`` (``floor``, ``ceiling``, ``bound``, ``context``); unknown metrics
    take the reference's default role."""
    try:
        return metric_info(metric).reference_role(reference)
    except KeyError:  # a metric this imgx does not know (an older run)
        return REFERENCE_ROLES.get(reference, "context")


def worse_than_floors(metric: str, value: float | None, references: Mapping[str, float | None]) -> list[str]:
    """The references that are floors for ``metric`` and that ``value`` does not beat, in the given order.

    A trade-off metric (``higher_means``) has no floor; a metric this imgx does not know is never flagged.
    """
    try:
        info = metric_info(metric)
    except KeyError:  # an older run's metric: no direction to judge by
        return []
    if value is None or info.better == "neither":
        return []
    return [ref for ref, rv in references.items() if rv is not None and info.reference_role(ref) == "floor"
            and (value < rv if info.higher_is_better else value > rv)]


def __getattr__(name: str):
    """``imgx.metrics.frechet_distance`` without importing torch at ``import imgx.metrics`` time."""
    if name == "frechet_distance":
        from imgx.metrics.frechet import frechet_distance

        return frechet_distance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
