"""Load diffusers' Stable Diffusion pipelines safely, once, and set them up per case.

One loader serves both diffusion tasks, chosen by ``kind`` (see :data:`KINDS`): ``edit`` loads a
``StableDiffusionInstructPix2PixPipeline`` (a UNet with 8 input channels), ``text-to-image`` a
``StableDiffusionPipeline`` or, where the folder's ``model_index.json`` names another diffusers text-to-image
pipeline (SDXL, SD-turbo), that class through ``AutoPipelineForText2Image`` (a UNet with 4 input channels).

Weights come from a hub id (default per kind, e.g. ``timbrooks/instruct-pix2pix``), a local diffusers folder,
or ``tiny`` (random weights built from configs, see :mod:`imgx.models.tiny`). Every source goes through the same
``from_pretrained`` on a local folder after checks: a diffusers pipeline (``model_index.json``), safetensors
weights only, no remote code. ``HF_HUB_OFFLINE`` is honoured (cache only); missing weights raise
:class:`~imgx.errors.WeightsError` with what to do.

A loaded pipeline is kept in the run's ``resources`` under its (weights, device, dtype, safety checker,
variant) key; per-case settings (scheduler, attention, compile, channels_last) are switched on it in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgx.env import default_cache_dir
from imgx.errors import WeightsError
from imgx.hub import cache_only_reason

log = logging.getLogger("imgx.models.instruct_pix2pix")

DEFAULT_WEIGHTS = "timbrooks/instruct-pix2pix"
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RESOURCE = "instruct-pix2pix"
# Components that hold weights and the libraries that may provide them; anything else would need remote code.
_LIBRARIES = {"diffusers", "transformers", None}
_WEIGHT_COMPONENTS = ("unet", "vae", "text_encoder")


@dataclass(frozen=True)
class PipelineKind:
    """What one task needs from a pipeline folder: its default weights, UNet input channels and tiny builder."""

    name: str
    title: str
    default_weights: str
    unet_in_channels: int
    channels_note: str
    tiny: str  # the imgx.models.tiny function (cache_dir) -> folder of the random-weight pipeline


KINDS = {
    "edit": PipelineKind("edit", "InstructPix2Pix", DEFAULT_WEIGHTS, 8,
                         "an InstructPix2Pix UNet takes 8 (noise latents + image latents). Is this a text-to-image "
                         "Stable Diffusion folder?", "tiny_pix2pix_dir"),
    # Any diffusers image-to-image pipeline (model diffusers-img2img): SD 1/2, SDXL img2img; tiny is the tiny
    # text-to-image folder, which AutoPipelineForImage2Image loads as StableDiffusionImg2ImgPipeline.
    "img2img": PipelineKind("img2img", "diffusers image-to-image", "stable-diffusion-v1-5/stable-diffusion-v1-5", 4,
                            "an image-to-image UNet takes 4 (noise latents). Is this an InstructPix2Pix folder "
                            "(model: instruct-pix2pix) or an inpainting one?", "tiny_text2image_dir"),
    "text-to-image": PipelineKind("text-to-image", "Stable Diffusion text-to-image",
                                  "stable-diffusion-v1-5/stable-diffusion-v1-5", 4,
                                  "a text-to-image UNet takes 4 (noise latents). Is this an InstructPix2Pix or "
                                  "inpainting folder?", "tiny_text2image_dir"),
}


def _kind(kind: str) -> PipelineKind:
    if kind not in KINDS:
        raise ValueError(f"unknown pipeline kind {kind!r}; one of {', '.join(KINDS)}")
    return KINDS[kind]


@dataclass
class LoadedPipeline:
    """A loaded pipeline and what it is: provenance for ``info`` and the state needed to switch settings."""

    pipe: Any
    key: tuple
    device: str
    dtype: str
    info: dict[str, Any]
    base_scheduler_config: Any
    base_unet: Any = None
    settings: dict[str, Any] = field(default_factory=dict)
    compiled: dict[bool, Any] = field(default_factory=dict)


def torch_dtype(name: str):
    """``"float32" | "float16" | "bfloat16"`` → the torch dtype."""
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def _missing_message(weights: str, reason: str, title: str = "InstructPix2Pix") -> str:
    return (f"{title} weights {weights!r} are not available: {reason}. Make them available with "
            f"`hf download {weights}` on a machine with network access (then copy the HF cache, "
            "or set HF_HOME to it), or point model.weights at a local diffusers folder; use weights: tiny for "
            "a random-weight pipeline that needs no download")


def _known_library(library: str | None) -> bool:
    """diffusers, transformers, or one of diffusers' own pipeline packages (e.g. ``stable_diffusion``)."""
    if library in _LIBRARIES:
        return True
    if not isinstance(library, str) or not library.isidentifier():
        return False
    import importlib.util

    return importlib.util.find_spec(f"diffusers.pipelines.{library}") is not None


def check_folder(folder: Path, *, variant: str | None = None, safety_checker: bool = False) -> dict[str, Any]:
    """Refuse a folder that is not a diffusers pipeline, holds pickle-only weights or asks for remote code.

    Returns:
        the parsed ``model_index.json``.

    Raises:
        WeightsError: naming the folder and the problem.
    """
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise WeightsError(f"{folder}: not a diffusers pipeline folder (no model_index.json); save one with "
                           "pipeline.save_pretrained(folder, safe_serialization=True)")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise WeightsError(f"{index_path}: not valid JSON ({exc})") from None
    if not isinstance(index, dict):
        raise WeightsError(f"{index_path}: not a JSON object")
    if isinstance(index.get("_class_name"), list) or "custom_pipeline" in index:
        raise WeightsError(f"{folder}: model_index.json asks for a custom pipeline (remote code); refused")
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2:
            continue
        if not _known_library(value[0]):
            raise WeightsError(f"{folder}: component {name!r} comes from {value[0]!r}, which would run code from "
                               "the folder or the hub (remote code); refused")
    scripts = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.py"))
    if scripts:
        raise WeightsError(f"{folder}: contains Python files ({', '.join(scripts[:3])}); pipelines that ship code "
                           "are refused (no remote code)")
    for config in folder.rglob("*.json"):
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and ("auto_map" in data or data.get("trust_remote_code")):
            raise WeightsError(f"{config}: asks for remote code (auto_map); refused")
    needed = list(_WEIGHT_COMPONENTS) + (["safety_checker"] if safety_checker else [])
    for name in needed:
        if not isinstance(index.get(name), list) or index[name][0] is None:
            if name == "safety_checker":
                raise WeightsError(f"{folder}: has no safety checker; set model.safety_checker: false")
            raise WeightsError(f"{folder}: model_index.json has no {name!r} component")
        sub = folder / name
        files = [p for p in sub.glob("*") if p.is_file()] if sub.is_dir() else []
        safetensors = [p for p in files if p.suffix == ".safetensors" or p.name.endswith(".safetensors.index.json")]
        if variant:
            safetensors = [p for p in safetensors if f".{variant}." in p.name]
        if not safetensors:
            pickles = [p.name for p in files if p.suffix in PICKLE_SUFFIXES or ".bin.index" in p.name]
            if pickles:
                raise WeightsError(f"{sub}: only pickle checkpoints ({', '.join(sorted(pickles)[:3])}); imgx loads "
                                   "safetensors only. Convert them with save_pretrained(..., "
                                   "safe_serialization=True)")
            what = f" for variant {variant!r}" if variant else ""
            raise WeightsError(f"{sub}: no safetensors weights{what}")
    return index


def resolve_weights(weights: str | None, cache_dir: str | Path, *, variant: str | None = None,
                    safety_checker: bool = False, kind: str = "edit") -> tuple[Path, dict[str, Any]]:
    """Turn ``model.weights`` into a checked local folder and its provenance (``kind``: see :data:`KINDS`).

    Returns:
        ``(folder, info)``; info has ``weights``, ``source`` (tiny | folder | hub), ``random_weights`` and,
        for hub snapshots, ``revision``.
    """
    what = _kind(kind)
    weights = weights or what.default_weights
    info: dict[str, Any] = {"weights": weights, "random_weights": False}
    if weights == "tiny":
        from imgx.models import tiny

        folder = getattr(tiny, what.tiny)(cache_dir)
        info.update(source="tiny", random_weights=True, tiny_version=tiny.TINY_VERSION)
    else:
        path = Path(weights).expanduser()
        if path.exists():
            if not path.is_dir():
                raise WeightsError(f"{path}: is a file; model.weights needs a diffusers pipeline folder or a hub id "
                                   "(single-file checkpoints are not supported)")
            folder = path.resolve()
            info["source"] = "folder"
        elif _HUB_ID.match(weights) and not weights.startswith((".", "~")):
            folder = _download(weights, variant, what.title)
            info.update(source="hub", revision=folder.name)
        else:
            raise WeightsError(f"model.weights {weights!r}: no such folder, and not a hub id like "
                               f"{what.default_weights!r}")
    check_folder(folder, variant=variant, safety_checker=safety_checker)
    if (folder / "imgx_tiny.json").is_file():  # a copy of the tiny pipeline is still random weights
        info["random_weights"] = True
    info["path"] = str(folder)
    info["fingerprint"] = folder_fingerprint(folder)
    return folder, info


def _download(repo_id: str, variant: str | None, title: str = "InstructPix2Pix") -> Path:
    from diffusers import DiffusionPipeline

    cache_only = cache_only_reason()
    local_only = cache_only is not None
    try:
        # The generic download fetches the files model_index.json names; nothing is imported or run from them.
        path = DiffusionPipeline.download(repo_id, use_safetensors=True, variant=variant, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        reason = (f"not in the local Hugging Face cache and {cache_only}" if local_only
                  else f"download failed ({str(exc).splitlines()[0][:200]})")
        raise WeightsError(_missing_message(repo_id, reason, title)) from None
    return Path(path)


def folder_fingerprint(folder: Path) -> str:
    """A cheap content fingerprint: configs' bytes and the weight files' names and sizes (no 2 GB hashing)."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        rel = str(p.relative_to(folder))
        h.update(rel.encode())
        if p.suffix == ".json" or p.suffix == ".txt":
            h.update(p.read_bytes())
        else:
            h.update(str(p.stat().st_size).encode())
    return h.hexdigest()[:16]


def load_pipeline(spec, device: str = "cpu", cache_dir: str | Path | None = None,
                  resources: dict[str, Any] | None = None, kind: str = "edit") -> LoadedPipeline:
    """The pipeline for a ``model:`` spec on ``device``, loaded once per (weights, device, dtype, ...).

    Args:
        spec: a :class:`~imgx.suite.schema.ModelSpec` (weights, dtype, safety_checker, variant, attention,
            compile, channels_last).
        device: ``cpu`` or ``cuda[:N]``.
        cache_dir: where ``tiny`` is built (``ctx.cache_dir``).
        resources: the run's shared resources (``ctx.resources``); the pipeline is kept there and reused.
        kind: ``edit`` (InstructPix2Pix), ``img2img`` (any diffusers image-to-image pipeline) or ``text-to-image``
            (see :data:`KINDS`).

    Raises:
        WeightsError: weights missing, unsafe or not a pipeline of that kind.
    """
    import torch

    what = _kind(kind)
    resources = resources if resources is not None else {}
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    key = (kind, spec.weights or what.default_weights, str(device), spec.dtype, bool(spec.safety_checker),
           spec.variant)
    loaded = resources.get(_RESOURCE)
    if loaded is None or loaded.key != key:
        if loaded is not None:  # keep one pipeline at a time: a second real pipeline may not fit beside the first
            resources.pop(_RESOURCE, None)
            del loaded
            if str(device).startswith("cuda"):
                torch.cuda.empty_cache()
        loaded = _load(spec, str(device), cache_dir, key, what)
        resources[_RESOURCE] = loaded
    configure(loaded, attention=spec.attention, compile=spec.compile, channels_last=spec.channels_last)
    return loaded


def pipeline_class(kind: str, index: dict[str, Any]):
    """The diffusers class that loads a folder of this kind.

    ``edit``: ``StableDiffusionInstructPix2PixPipeline``. ``text-to-image``: ``StableDiffusionPipeline`` when
    ``model_index.json`` names it (or a subclass-free SD 1/2 folder), otherwise ``AutoPipelineForText2Image``,
    which maps the named class (e.g. ``StableDiffusionXLPipeline``) to its text-to-image pipeline. ``img2img``:
    ``AutoPipelineForImage2Image``, which maps the named class to its image-to-image pipeline
    (``StableDiffusionPipeline`` → ``StableDiffusionImg2ImgPipeline``, SDXL → ``StableDiffusionXLImg2ImgPipeline``).
    """
    import diffusers

    if kind == "edit":
        return diffusers.StableDiffusionInstructPix2PixPipeline
    if kind == "img2img":
        return diffusers.AutoPipelineForImage2Image
    if index.get("_class_name") in (None, "StableDiffusionPipeline"):
        return diffusers.StableDiffusionPipeline
    return diffusers.AutoPipelineForText2Image


def _load(spec, device: str, cache_dir: Path, key: tuple, what: PipelineKind = KINDS["edit"]) -> LoadedPipeline:
    folder, info = resolve_weights(spec.weights, cache_dir, variant=spec.variant, safety_checker=spec.safety_checker,
                                   kind=what.name)
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    if what.name == "img2img" and index.get("_class_name") == "StableDiffusionInstructPix2PixPipeline":
        raise WeightsError(f"{folder}: an InstructPix2Pix pipeline; load it with model: instruct-pix2pix "
                           "(diffusers-img2img loads SD 1/2 and SDXL image-to-image pipelines)")
    cls = pipeline_class(what.name, index)
    kwargs: dict[str, Any] = {"torch_dtype": torch_dtype(spec.dtype), "use_safetensors": True,
                              "local_files_only": True, "variant": spec.variant}
    if not spec.safety_checker and "safety_checker" in index:  # SDXL folders have no safety checker to drop
        kwargs.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    try:
        with quiet_loading():
            pipe = cls.from_pretrained(folder, **kwargs)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise WeightsError(f"{folder}: cannot load as {'an' if what.title[0] in 'AEIOU' else 'a'} {what.title} "
                           f"pipeline: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None
    in_channels = pipe.unet.config.in_channels
    if in_channels != what.unet_in_channels:
        raise WeightsError(f"{folder}: the UNet takes {in_channels} input channels; {what.channels_note}")
    # float16 on CPU: `imgx validate` and `imgx run` warn once per case entry; diffusers would warn per module.
    pipe = pipe.to(device, silence_dtype_warnings=True)
    pipe.set_progress_bar_config(disable=True)
    info.update(dtype=spec.dtype, device=device, safety_checker=bool(spec.safety_checker), variant=spec.variant,
                pipeline=type(pipe).__name__)
    return LoadedPipeline(pipe=pipe, key=key, device=device, dtype=spec.dtype, info=info,
                          base_scheduler_config=pipe.scheduler.config, base_unet=pipe.unet)


@contextlib.contextmanager
def quiet_loading():
    """Silence diffusers' and transformers' loading bars and the ``torch_dtype`` rename notice.

    ``torch_dtype`` is kept because older diffusers (which imgx supports) know no ``dtype`` argument.
    """
    from diffusers.utils import logging as dlogging
    from transformers.utils import logging as tlogging

    d_on, t_on = dlogging.is_progress_bar_enabled(), tlogging.is_progress_bar_enabled()
    dlogging.disable_progress_bar()
    tlogging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            yield
    finally:
        if d_on:
            dlogging.enable_progress_bar()
        if t_on:
            tlogging.enable_progress_bar()


def configure(loaded: LoadedPipeline, *, attention: str = "sdpa", compile: bool = False,
              channels_last: bool = False) -> None:
    """Switch attention kernels, memory format and ``torch.compile`` on a loaded pipeline, in place.

    ``attention: math`` uses diffusers' plain ``AttnProcessor`` (explicit softmax(QK^T)V);
    ``sdpa`` uses ``AttnProcessor2_0`` (``torch.nn.functional.scaled_dot_product_attention``). ``compile``
    wraps the UNet with ``torch.compile`` (kept, so toggling back and forth compiles once).
    """
    import torch
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    wanted = {"attention": attention, "compile": bool(compile), "channels_last": bool(channels_last)}
    if loaded.settings == wanted:
        return
    pipe, unet = loaded.pipe, loaded.base_unet
    if loaded.settings.get("attention") != attention:
        processor = AttnProcessor2_0 if attention == "sdpa" else AttnProcessor
        unet.set_attn_processor(processor())
        pipe.vae.set_attn_processor(processor())
    if loaded.settings.get("channels_last", False) != channels_last:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        unet.to(memory_format=fmt)
        pipe.vae.to(memory_format=fmt)
    if compile:
        if True not in loaded.compiled:
            loaded.compiled[True] = torch.compile(unet)
        pipe.unet = loaded.compiled[True]
    else:
        pipe.unet = unet
    loaded.settings = wanted
    loaded.info.update({f"setting_{k}": v for k, v in wanted.items()})


def set_scheduler(loaded: LoadedPipeline, name: str) -> None:
    """Swap in a fresh scheduler of the named kind, configured from the pipeline's original scheduler."""
    from imgx.models import SCHEDULERS

    cls = SCHEDULERS.get(name)
    loaded.pipe.scheduler = cls.from_config(loaded.base_scheduler_config)
