"""Metric metadata, declared once; reports, gates and comparisons read it from here.

Computation lives in the submodules (pixel, frechet, clip, timing); this module imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from imgx.registry import Registry


@dataclass(frozen=True)
class MetricInfo:
    """What a metric means: display name, unit, direction and kind."""

    name: str
    display: str
    unit: str
    higher_is_better: bool
    kind: str  # full-reference | no-reference | distribution | timing | memory | cost (exact counts)
    tasks: frozenset[str]
    requestable: bool = True  # False for rows a task always emits (train_seconds) or that come with another
    quality: bool = True  # False for timing and memory: compared only on the same machine
    options: frozenset[str] = frozenset()  # keys accepted under metric_options.<name>

    @property
    def direction(self) -> str:
        """``"higher"`` or ``"lower"`` is better."""
        return "higher" if self.higher_is_better else "lower"


METRICS = Registry("metric")


def _metric(name, display, unit, higher, kind, tasks, requestable=True, quality=True, options=()):
    METRICS.register(name, MetricInfo(name, display, unit, higher, kind, frozenset(tasks), requestable, quality,
                                      frozenset(options)),
                     help=f"{display} ({'higher' if higher else 'lower'} is better)")


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
_metric("train_seconds", "training time", "s", False, "timing", {"colorize", "generate", "translate", "text-to-image"},
        requestable=False, quality=False)
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
_metric("input_ssim", "SSIM to the input", "", True, "full-reference", {"edit"})
_metric("instruction_accuracy", "instruction accuracy", "", True, "full-reference", {"edit"})

FEATURE_EXTRACTORS = Registry("feature extractor")
FEATURE_EXTRACTORS.register("inception-v3", "imgx.metrics.features:InceptionV3Features",
                            help="torch-fidelity Inception-v3 pool features (2048-d), the FID standard")
FEATURE_EXTRACTORS.register("digits-classifier", "imgx.metrics.features:DigitsClassifierFeatures",
                            help="small CNN trained on the embedded digits; domain FID that works offline")
FEATURE_EXTRACTORS.register("efficientnet-lite0", "imgx.metrics.features:EfficientNetLite0Features",
                            help="ImageNet EfficientNet-Lite0 pooled features (1280-d), offline from the optional "
                                 "'features' extra; not comparable to Inception FID")


def metric_info(name: str) -> MetricInfo:
    """Metadata for a metric name; per-stage latency rows (``latency_ms_<stage>``) share latency's."""
    if name.startswith("latency_ms_") and name not in METRICS:
        return MetricInfo(name, name.replace("_", " "), "ms", False, "timing", frozenset(_ALL), False, False)
    base, bracket, part = name.partition("[")
    if bracket and part.endswith("]") and base in METRICS and name not in METRICS:  # per part: target_mse[invert]
        from dataclasses import replace

        info = METRICS.get(base)
        return replace(info, name=name, display=f"{info.display} ({part[:-1]})", requestable=False)
    return METRICS.get(name)


def __getattr__(name: str):
    """``imgx.metrics.frechet_distance`` without importing torch at ``import imgx.metrics`` time."""
    if name == "frechet_distance":
        from imgx.metrics.frechet import frechet_distance

        return frechet_distance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
