"""Many guidance points through one denoising loop, each point exactly as a bare diffusers call computes it.

A bare ``pipe(prompt, image=..., guidance_scale=g, image_guidance_scale=ig, generator=...)`` call runs the UNet on
the classifier-free-guidance branches of one image (3 for InstructPix2Pix: text, image, unconditional; 2 for
Stable Diffusion text-to-image: unconditional, text). :func:`denoise_points` runs the branches of up to
``max_batch`` points in one UNet batch per step while every point keeps what makes its output its own:

- its prompt embeddings and input-image latents, computed once per prompt and per input (:class:`Encodings`)
  with the pipeline's own methods (``_encode_prompt`` / ``encode_prompt``, ``prepare_image_latents``);
- its own scheduler instance (``from_config`` of the pipeline's scheduler, ``set_timesteps``);
- its own CPU ``torch.Generator`` seeded with its seed: initial latents drawn by ``randn_tensor`` exactly as
  ``prepare_latents`` draws them, and ancestral samplers' per-step noise drawn from it in ``scheduler.step``;
- its own guidance scales when its branches are combined; a point without guidance (``g <= 1``) runs the
  single branch a bare call runs.

UNet rows with equal inputs are run once per step: at the first step every point of one seed starts from the
same latents, so the points of a sweep share their branches there (a 4-point sweep of one prompt runs 3 rows
instead of 12); and at ``image_guidance_scale == 1`` InstructPix2Pix's unconditional branch cancels from the
guidance, so it is not run. ``Denoised.unet_rows`` against ``bare_unet_rows`` says how much work that saved.

Latents are decoded by the VAE and post-processed (safety checker included) as the pipeline does. The only
differences from bare calls are the batch size the kernels see and the order of a few additions, which change
float rounding: within 2 uint8 levels on trained weights for every scheduler (tests bound it), but amplified by
random weights with deterministic samplers, where even bare calls of different batch sizes differ (issue 24).

Stable Diffusion XL (:class:`SDXLBranches`) adds each row's pooled text embedding and size ``time_ids``;
:func:`text_to_image_branches` says which pipelines the loop reproduces and why not the others.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("imgx.diffusion.batched")

MAX_BATCH_LIMIT = 256
CPU_MAX_BATCH = 4  # CPU kernels gain little past a few points; keeps peak memory small


@dataclass
class Point:
    """One image to make: a prompt, its guidance scales, the seed of its generator and (editing) its input.

    Attributes:
        prompt: the instruction (editing) or the prompt (text-to-image).
        seed: seed of the point's CPU ``torch.Generator``.
        guidance_scale: text guidance ``g``.
        image_guidance_scale: image guidance ``ig`` (editing only).
        image: the input image (PIL) for editing; None for text-to-image.
        image_id: a hashable name of the input, so that its latents are computed once.
    """

    prompt: str
    seed: int
    guidance_scale: float
    image_guidance_scale: float = 1.5
    image: Any = None
    image_id: Hashable = None


@dataclass
class Denoised:
    """The outputs of :func:`denoise_points`, in the order of the points given, and how they were made.

    Attributes:
        images: ``(H, W, 3)`` float arrays in ``[0, 1]`` (``output_type="np"``; NaN kept), one per point.
        nsfw: the safety checker's flag per point (None when no checker ran).
        batch_points: the number of points in the loop that made each point.
        seconds: wall time of all loops (CUDA synchronised), encodings included.
        halvings: one line per out-of-memory retry at half the batch.
        loops: the number of points of each loop, in the order they ran.
        peak_memory_mb: peak memory of the loops and what it measures.
        unet_rows: UNet rows (one branch of one image at one step) the loops ran.
        bare_unet_rows: UNet rows one bare call per point would run for the same images.
        memory_growth_mb: CUDA only: the peak over what was allocated when the loops began (the loops' own
            memory, weights excluded), to hold against :attr:`BatchSize.budget_mb`.
    """

    images: list[np.ndarray]
    nsfw: list[bool | None]
    batch_points: list[int]
    seconds: float
    halvings: list[str] = field(default_factory=list)
    loops: list[int] = field(default_factory=list)
    peak_memory_mb: tuple[float, str] | None = None
    unet_rows: int = 0
    bare_unet_rows: int = 0
    memory_growth_mb: float | None = None


class Pix2PixBranches:
    """InstructPix2Pix: branches (text, image, unconditional), as ``StableDiffusionInstructPix2PixPipeline``."""

    kinds = ("text", "image", "uncond")  # the rows of ``prompt_embeds`` / ``image_latents``, in this order

    @staticmethod
    def guided(pipe, point: Point) -> bool:
        return point.guidance_scale > 1.0 and point.image_guidance_scale >= 1.0

    @staticmethod
    def needed(guided: bool, point: Point) -> tuple[str, ...]:
        """The branches the point's noise prediction uses. Unguided: the text branch with the image latents
        (what a call without guidance runs). At ``image_guidance_scale == 1`` the unconditional branch cancels:
        ``u + g (t - i) + 1 (i - u) = i + g (t - i)``, so it is not run."""
        if not guided:
            return ("text",)
        return ("text", "image") if point.image_guidance_scale == 1.0 else Pix2PixBranches.kinds

    @staticmethod
    def row_key(kind: str, point: Point, image_key: Hashable) -> tuple:
        """What a row's conditioning depends on: its prompt embedding (the empty prompt's for ``image`` and
        ``uncond``) and its image latents (zeros for ``uncond``)."""
        return {"text": (point.prompt, image_key), "image": ("", image_key), "uncond": ("", None)}[kind]

    @staticmethod
    def prompt_embeds(pipe, prompt: str, device):
        """``(3, L, D)``: text, empty, empty."""
        return pipe._encode_prompt(prompt, device, 1, True)

    @staticmethod
    def image_latents(pipe, image, dtype, device):
        """``(3, C, h, w)``: image, image, zeros (``vae.encode(...).latent_dist.mode()``)."""
        return pipe.prepare_image_latents(pipe.image_processor.preprocess(image), 1, 1, dtype, device, True)

    @staticmethod
    def combine(pred: dict, point: Point):
        """The point's noise prediction from its branches' predictions (``{kind: tensor}``), as the pipeline."""
        if len(pred) == 1:
            return pred["text"]
        text, image = pred["text"], pred["image"]
        if "uncond" not in pred:
            return image + point.guidance_scale * (text - image)
        uncond = pred["uncond"]
        return (uncond + point.guidance_scale * (text - image)
                + point.image_guidance_scale * (image - uncond))


class TextToImageBranches:
    """Stable Diffusion text-to-image: branches (unconditional, text), as ``StableDiffusionPipeline``."""

    kinds = ("uncond", "text")

    @staticmethod
    def guided(pipe, point: Point) -> bool:
        return point.guidance_scale > 1.0 and pipe.unet.config.time_cond_proj_dim is None

    @staticmethod
    def needed(guided: bool, point: Point) -> tuple[str, ...]:
        """Both branches with guidance; the text branch alone without."""
        return TextToImageBranches.kinds if guided else ("text",)

    @staticmethod
    def row_key(kind: str, point: Point, image_key: Hashable) -> tuple:
        return (point.prompt,) if kind == "text" else ("",)

    @staticmethod
    def prompt_embeds(pipe, prompt: str, device):
        """``(2, L, D)``: empty, text."""
        import torch

        text, negative = pipe.encode_prompt(prompt, device, 1, True, None)
        return torch.cat([negative, text])

    image_latents = None

    @staticmethod
    def combine(pred: dict, point: Point):
        if len(pred) == 1:
            return pred["text"]
        uncond, text = pred["uncond"], pred["text"]
        return uncond + point.guidance_scale * (text - uncond)


class SDXLBranches(TextToImageBranches):
    """Stable Diffusion XL text-to-image: the branches of :class:`TextToImageBranches`, each with its pooled text
    embedding and the size conditioning ``time_ids`` in ``added_cond_kwargs``, as ``StableDiffusionXLPipeline``."""

    @staticmethod
    def prompt_embeds(pipe, prompt: str, device):
        """:class:`Conditioning` of ``(2, L, D)`` hidden states and ``(2, P)`` pooled embeddings: empty, text."""
        import torch

        text, negative, pooled, negative_pooled = pipe.encode_prompt(
            prompt=prompt, device=device, num_images_per_prompt=1, do_classifier_free_guidance=True)
        return Conditioning(torch.cat([negative, text]), torch.cat([negative_pooled, pooled]))

    @staticmethod
    def added_cond(pipe, pooled, height: int, width: int):
        """``added_cond_kwargs`` for rows with these pooled embeddings at this output size (no crop), as the
        pipeline's defaults make them (``original_size = target_size = (height, width)``)."""
        projection = (int(pooled.shape[-1]) if getattr(pipe, "text_encoder_2", None) is None
                      else pipe.text_encoder_2.config.projection_dim)
        time_ids = pipe._get_add_time_ids((height, width), (0, 0), (height, width), dtype=pooled.dtype,
                                          text_encoder_projection_dim=projection)
        return {"text_embeds": pooled, "time_ids": time_ids.to(pooled.device).repeat(len(pooled), 1)}


@dataclass
class Conditioning:
    """One prompt's branch rows when the UNet needs more than hidden states: ``hidden`` ``(B, L, D)`` and
    ``pooled`` ``(B, P)`` (SDXL's ``text_embeds``), one row per branch kind."""

    hidden: Any
    pooled: Any = None


BRANCHES = {"instruct-pix2pix": Pix2PixBranches, "text-to-image": TextToImageBranches, "sdxl": SDXLBranches}


def text_to_image_branches(pipe):
    """The branches that reproduce ``pipe``'s own call, or a one-line reason why none does here.

    Returns:
        ``(branches, None)``, or ``(None, reason)`` when the batched loop cannot reproduce the pipeline's call
        (the task then calls the pipeline once per point and writes the reason in the case's detail).
    """
    unet = pipe.unet.config
    if getattr(unet, "time_cond_proj_dim", None) is not None:
        return None, (f"not batched: the UNet takes a guidance-scale embedding (time_cond_proj_dim "
                      f"{unet.time_cond_proj_dim}, LCM-style), which the batched loop does not compute; one "
                      "pipeline call per point")
    added = getattr(unet, "addition_embed_type", None)
    name = type(pipe).__name__
    if added == "text_time" and name == "StableDiffusionXLPipeline":
        return SDXLBranches, None
    if added in (None, "text") and name == "StableDiffusionPipeline":
        return TextToImageBranches, None
    return None, (f"not batched: {name} with a UNet addition embedding {added!r} is not one the batched loop "
                  "reproduces (StableDiffusionPipeline, StableDiffusionXLPipeline); one pipeline call per point")


class Encodings:
    """Prompt embeddings per prompt and image latents per input, computed once and reused by every point."""

    def __init__(self, pipe, branches):
        self.pipe, self.branches = pipe, branches
        self.device = pipe._execution_device
        self._prompts: dict[str, Any] = {}
        self._images: dict[Hashable, Any] = {}

    def prompt(self, prompt: str):
        if prompt not in self._prompts:
            self._prompts[prompt] = self.branches.prompt_embeds(self.pipe, prompt, self.device)
        return self._prompts[prompt]

    @staticmethod
    def image_key(point: Point) -> Hashable:
        """The name of the point's input: its ``image_id``, or the image object itself."""
        return point.image_id if point.image_id is not None else id(point.image)

    def image(self, point: Point, dtype):
        key = self.image_key(point)
        if key not in self._images:
            self._images[key] = self.branches.image_latents(self.pipe, point.image, dtype, self.device)
        return self._images[key]


@dataclass(frozen=True)
class BatchSize:
    """Points per loop, and why: set by the suite, the CPU default, or a CUDA memory budget.

    Attributes:
        points: ``max_batch``.
        why: a phrase for the case's detail.
        budget_mb: on CUDA by default, the memory the loops may add to what is allocated (half the free
            memory when chosen); None otherwise.
    """

    points: int
    why: str
    budget_mb: float | None = None


def default_max_batch(pipe, device: str, height: int, width: int, branches=Pix2PixBranches) -> BatchSize:
    """A batch that fits: ``CPU_MAX_BATCH`` on CPU; on CUDA, half the free memory over an estimate per point.

    The estimate per point is the UNet's widest activation (first block's channels at latent size) times 60
    per branch, a rough upper bound for Stable Diffusion UNets with memory-efficient attention.
    """
    if not str(device).startswith("cuda"):
        return BatchSize(CPU_MAX_BATCH, "the CPU default")
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(device))
    scale = getattr(pipe, "vae_scale_factor", 8)
    width0 = pipe.unet.config.block_out_channels[0]
    itemsize = torch.empty((), dtype=pipe.unet.dtype).element_size()
    per_point = len(branches.kinds) * (height // scale) * (width // scale) * width0 * 60 * itemsize
    budget = free // 2
    points = int(max(1, min(MAX_BATCH_LIMIT, budget // max(per_point, 1))))
    return BatchSize(points, f"chosen for a budget of {budget / 2**20:.0f} MB (half the free CUDA memory) at an "
                             f"estimated {per_point / 2**20:.1f} MB per point", budget / 2**20)


def choose_max_batch(max_batch: int | None, pipe, device: str, height: int, width: int,
                     branches=Pix2PixBranches) -> BatchSize:
    """The suite's ``inference.max_batch`` when it sets one, else :func:`default_max_batch`."""
    if max_batch:
        return BatchSize(max_batch, "inference.max_batch")
    return default_max_batch(pipe, device, height, width, branches)


def denoise_points(pipe, points: list[Point], *, num_inference_steps: int, branches=Pix2PixBranches,
                   max_batch: int = CPU_MAX_BATCH, height: int | None = None, width: int | None = None,
                   encodings: Encodings | None = None, progress=None) -> Denoised:
    """Make every point's image with batched denoising loops of up to ``max_batch`` points.

    Args:
        pipe: a loaded diffusers pipeline with the scheduler to use (each point gets its own copy).
        points: the points; editing points of different input sizes run in different loops.
        num_inference_steps: steps of every point.
        branches: :class:`Pix2PixBranches` or :class:`TextToImageBranches`.
        max_batch: points per loop; on CUDA out-of-memory a loop is retried at half the batch.
        height, width: text-to-image output size (default: the UNet's sample size times the VAE factor).
        encodings: shared encodings (reuse across calls on the same pipeline).
        progress: optional ``callable(iterable) -> iterable`` wrapped around each loop's steps.

    Returns:
        the images in the order of ``points`` and how they were made.
    """
    import torch

    from imgx.metrics.timing import Clock, peak_memory_mb, reset_peak_memory

    if not points:
        return Denoised([], [], [], 0.0)
    encodings = encodings or Encodings(pipe, branches)
    device = str(encodings.device)
    images: list[Any] = [None] * len(points)
    nsfw: list[bool | None] = [None] * len(points)
    batch_points = [0] * len(points)
    halvings: list[str] = []
    loops: list[int] = []
    unet_rows = [0, 0]  # run, and what one bare call per point runs
    # Points whose latents have different shapes cannot share a UNet batch.
    buckets: dict[Any, list[int]] = {}
    for i, p in enumerate(points):
        buckets.setdefault(p.image.size if p.image is not None else None, []).append(i)
    for indices in buckets.values():  # points that can share rows (same seed, prompt, input) into the same loop
        indices.sort(key=lambda i: (points[i].seed, points[i].prompt, str(encodings.image_key(points[i]))))
    reset_peak_memory(device)
    allocated = torch.cuda.memory_allocated(device) / 2**20 if device.startswith("cuda") else None
    size = max(1, int(max_batch))
    seeds = [p.seed for p in points]
    with Clock(device) as clock, torch.no_grad():
        for indices in buckets.values():
            start = 0
            while start < len(indices):
                chunk = _next_loop(indices, start, size, seeds)
                try:
                    out, flags, ran, bare = _loop(pipe, [points[i] for i in chunk], num_inference_steps, branches,
                                                  encodings, height, width, progress)
                except torch.cuda.OutOfMemoryError:
                    if size == 1:
                        raise
                    torch.cuda.empty_cache()
                    halvings.append(f"out of memory at {len(chunk)} points per loop; retried at {max(1, size // 2)}")
                    log.warning("batched sweep: %s", halvings[-1])
                    size = max(1, size // 2)
                    continue
                for j, i in enumerate(chunk):
                    images[i], nsfw[i], batch_points[i] = out[j], flags[j], len(chunk)
                loops.append(len(chunk))
                unet_rows[0] += ran
                unet_rows[1] += bare
                start += len(chunk)
    peak = peak_memory_mb(device)
    growth = None if allocated is None else peak[0] - allocated
    return Denoised(images, nsfw, batch_points, clock.ms / 1000.0, halvings, loops, peak, unet_rows[0],
                    unet_rows[1], growth)


def _next_loop(indices: list[int], start: int, size: int, seeds: list[int]) -> list[int]:
    """The points of the next loop, from ``indices[start:]`` (sorted so that points of one seed are adjacent).

    Points of one seed share their first step's rows, but only within one loop; so a loop takes whole seed groups,
    as many as fit in ``size``, and a group is split only when it is larger than a whole loop. Then the UNet rows
    run (``model_evaluations_per_image``) do not depend on the loop size whenever every group fits in one loop:
    a CPU's 4 points per loop and a GPU's memory-sized loops count the same (they differed when loops cut groups).
    """
    end = start
    while end < len(indices):
        group_end = end
        while group_end < len(indices) and seeds[indices[group_end]] == seeds[indices[end]]:
            group_end += 1
        if group_end - start <= size:
            end = group_end
            continue
        if group_end - end > size or end == start:  # larger than a loop: split it, filling this loop
            end = start + size
        break
    return indices[start:end]


def _step_kwargs(scheduler, generator, eta: float = 0.0) -> dict[str, Any]:
    """What the pipeline's ``prepare_extra_step_kwargs`` passes to this scheduler's ``step``."""
    params = set(inspect.signature(scheduler.step).parameters)
    kwargs: dict[str, Any] = {}
    if "eta" in params:
        kwargs["eta"] = eta
    if "generator" in params:
        kwargs["generator"] = generator
    return kwargs


def _loop(pipe, points: list[Point], steps: int, branches, encodings: Encodings, height, width, progress):
    """One denoising loop over ``points``: one UNet batch per step of the distinct rows the points need.

    Rows with equal inputs are computed once: points whose latents are equal (same seed at the first step, and
    after it only points that are duplicates) share their branches with the same conditioning, and a branch
    that cancels in a point's guidance is not run. Returns ``(images, nsfw flags, UNet rows run, UNet rows
    one bare call per point runs)``.
    """
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    device = encodings.device
    guided = [branches.guided(pipe, p) for p in points]
    needed = [branches.needed(g, p) for g, p in zip(guided, points, strict=True)]
    conds = [encodings.prompt(p.prompt) for p in points]
    embeds = [c.hidden if isinstance(c, Conditioning) else c for c in conds]
    pooled = [c.pooled if isinstance(c, Conditioning) else None for c in conds]
    dtype = embeds[0].dtype
    image_keys = [encodings.image_key(p) for p in points]
    extra = None
    scale = pipe.vae_scale_factor
    if branches.image_latents is not None:
        extra = [encodings.image(p, dtype) for p in points]
        lat_h, lat_w = extra[0].shape[-2:]
    else:
        sample = pipe.unet.config.sample_size
        sample = (sample, sample) if isinstance(sample, int) else sample
        lat_h, lat_w = (height or sample[0] * scale) // scale, (width or sample[1] * scale) // scale
    config = pipe.scheduler.config
    schedulers = [type(pipe.scheduler).from_config(config) for _ in points]
    generators = [torch.Generator("cpu").manual_seed(p.seed) for p in points]
    channels = pipe.vae.config.latent_channels if extra else pipe.unet.config.in_channels
    latents = []
    for s, gen in zip(schedulers, generators, strict=True):
        s.set_timesteps(steps, device=device)
        noise = randn_tensor((1, channels, lat_h, lat_w), generator=gen, device=device, dtype=dtype)
        latents.append(noise * s.init_noise_sigma)
    step_kwargs = [_step_kwargs(s, gen) for s, gen in zip(schedulers, generators, strict=True)]
    # Points of one class have equal latents: the same seed draws the same initial noise (and the same
    # ancestral noise at every step); a step keeps two points together only if all its inputs are equal.
    classes = _renumber([p.seed for p in points])
    bare_per_step = sum(len(branches.kinds) if g else 1 for g in guided)
    unet_rows = 0
    timesteps = schedulers[0].timesteps
    steps_iter = progress(range(len(timesteps))) if progress else range(len(timesteps))
    for i in steps_iter:
        scaled = [s.scale_model_input(latents[k], s.timesteps[i]) for k, s in enumerate(schedulers)]
        where: dict[tuple, int] = {}
        sources: list[tuple[int, int]] = []  # (point, branch index) of each distinct row
        slots = []
        for k, p in enumerate(points):
            slot = {}
            for kind in needed[k]:
                key = (classes[k], kind, branches.row_key(kind, p, image_keys[k]))
                if key not in where:
                    where[key] = len(sources)
                    sources.append((k, branches.kinds.index(kind)))
                slot[kind] = where[key]
            slots.append(slot)
        x = torch.cat([scaled[k] for k, _ in sources])
        if extra:
            x = torch.cat([x, torch.cat([extra[k][b:b + 1] for k, b in sources])], dim=1)
        hidden = torch.cat([embeds[k][b:b + 1] for k, b in sources])
        unet_kwargs = {}
        if pooled[0] is not None:
            rows = torch.cat([pooled[k][b:b + 1] for k, b in sources])
            unet_kwargs["added_cond_kwargs"] = branches.added_cond(pipe, rows, lat_h * scale, lat_w * scale)
        pred = pipe.unet(x, timesteps[i], encoder_hidden_states=hidden, return_dict=False, **unet_kwargs)[0]
        unet_rows += len(sources)
        for k, (p, s) in enumerate(zip(points, schedulers, strict=True)):
            noise_pred = branches.combine({kind: pred[r:r + 1] for kind, r in slots[k].items()}, p)
            latents[k] = s.step(noise_pred, s.timesteps[i], latents[k], **step_kwargs[k], return_dict=False)[0]
        classes = _renumber([(classes[k], p.prompt, image_keys[k], p.guidance_scale, p.image_guidance_scale)
                             for k, p in enumerate(points)])
    image = _decode(pipe, torch.cat(latents))
    flags = None
    if hasattr(pipe, "run_safety_checker"):  # SDXL pipelines have none
        image, flags = pipe.run_safety_checker(image, device, dtype)
    if getattr(pipe, "watermark", None) is not None:  # SDXL's invisible watermark, when the package is installed
        image = pipe.watermark.apply_watermark(image)
    denormalize = [True] * image.shape[0] if flags is None else [not f for f in flags]
    out = pipe.image_processor.postprocess(image, output_type="np", do_denormalize=denormalize)
    nsfw = [None] * len(points) if flags is None else [bool(f) for f in flags]
    return list(out), nsfw, unet_rows, bare_per_step * len(timesteps)


def _decode(pipe, latents):
    """VAE-decode latents as the pipeline does: SDXL's ``latents_mean``/``latents_std`` when the VAE has them, and
    a float16 VAE with ``force_upcast`` decoded in float32 (it overflows in float16)."""
    import torch

    vae, xl = pipe.vae, hasattr(pipe, "text_encoder_2")  # SD 1/2 pipelines ignore both settings
    mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
    if xl and mean is not None and std is not None:
        view = (1, len(mean), 1, 1)
        latents = (latents * torch.tensor(std).view(view).to(latents) / vae.config.scaling_factor
                   + torch.tensor(mean).view(view).to(latents))
    else:
        latents = latents / vae.config.scaling_factor
    upcast = xl and vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    if not upcast:
        return vae.decode(latents, return_dict=False)[0]
    vae.to(torch.float32)
    try:
        return vae.decode(latents.float(), return_dict=False)[0]
    finally:
        vae.to(torch.float16)


def _renumber(keys: list[Hashable]) -> list[int]:
    """Equal keys to equal small ints, in order of first appearance."""
    ids: dict[Hashable, int] = {}
    return [ids.setdefault(key, len(ids)) for key in keys]
