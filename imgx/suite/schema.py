"""The suite format as pydantic models (``extra="forbid"``: an unknown key is an error, never ignored).

Structure and ranges live here; names (task, model, metric, ...) are checked against the registries in
:mod:`imgx.suite.load`, so that a message can suggest the nearest registered name.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Slug = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Dtype = Literal["float32", "float16", "bfloat16"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class ModelSpec(_Strict):
    """``model:`` — the model name and the options that model accepts (see ``imgx list``).

    Other keys are kept (``extra="allow"``) only as the keyword arguments of a user's model (import path or entry
    point); for a built-in, :mod:`imgx.suite.load` refuses them like any unknown key.
    """

    model_config = ConfigDict(extra="allow", frozen=False)

    name: str
    checkpoint: str | None = None
    latent_dim: int | None = Field(None, ge=1, le=4096)
    weights: str | None = None
    dtype: Dtype = "float32"
    safety_checker: bool = False
    variant: str | None = None
    attention: Literal["sdpa", "math"] = "sdpa"
    compile: bool = False
    channels_last: bool = False
    loss: Literal["l1", "gan", "l1+gan"] | None = None
    lambda_l1: float | None = Field(None, ge=0, le=10_000)
    lambda_cycle: float | None = Field(None, ge=0, le=10_000)
    lambda_identity: float | None = Field(None, ge=0, le=10_000)
    depth: int | None = Field(None, ge=1, le=8)
    width: int | None = Field(None, ge=1, le=512)
    blocks: int | None = Field(None, ge=0, le=32)


class DataSpec(_Strict):
    """``data:`` — the data set name and its options."""

    name: str
    image_size: int | None = Field(None, ge=8, le=2048)
    train: int | None = Field(None, ge=1, le=1_000_000)
    test: int | None = Field(None, ge=1, le=1_000_000)
    count: int | None = Field(None, ge=1, le=100_000)
    root: str | None = None
    path: str | None = None
    download: bool = False
    photos: list[str] | None = None
    test_photos: list[str] | None = None
    pair: str | None = None
    style: str | None = None
    direction: Literal["ab", "ba"] | None = None
    instructions: list[str] | None = Field(None, min_length=1)
    # data: outputs (task: score): the folders the outputs in ``path`` are judged against, and a prompts CSV.
    target: str | None = None
    input: str | None = None
    reference: str | None = None
    prompts: str | None = None


class TrainSpec(_Strict):
    """``train:`` — fixed-epoch training settings."""

    epochs: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1, le=65_536)
    lr: float = Field(1.0e-3, gt=0, le=10)


class InferenceSpec(_Strict):
    """``inference:`` — diffusion settings; every key is also a sweep axis."""

    image_guidance_scale: float = Field(1.5, ge=0, le=50)
    guidance_scale: float = Field(7.5, ge=0, le=100)
    num_inference_steps: int = Field(20, ge=1, le=1000)
    # Image-to-image (model diffusers-img2img) only: how far the input is noised; None = the pipeline's default.
    strength: float | None = Field(None, gt=0, le=1)
    scheduler: str = "euler-ancestral"
    warmup: int = Field(1, ge=0, le=100)
    repeats: int = Field(3, ge=1, le=1000)
    # Not sweep axes and not part of the case key: they change how outputs are computed, not what they are.
    batch_sweep: bool = True
    max_batch: int | None = Field(None, ge=1, le=256)


class CaseSpec(_Strict):
    """One entry of ``cases:`` (after ``defaults:`` are merged in)."""

    id: Slug
    task: str
    model: ModelSpec
    data: DataSpec
    reference_data: DataSpec | None = None
    train: TrainSpec = Field(default_factory=TrainSpec)
    inference: InferenceSpec = Field(default_factory=InferenceSpec)
    prompts: list[Annotated[str, StringConstraints(min_length=1, max_length=2000)]] | None = None
    sweep: dict[str, list[Any]] = Field(default_factory=dict)
    metrics: list[str] = Field(default_factory=list)
    metric_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    gates: dict[str, str] = Field(default_factory=dict)
    regression: dict[str, str] = Field(default_factory=dict)
    device: str | list[str] = "cpu"
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    cpu_threads: int | None = Field(None, ge=1, le=1024)
    samples: int | None = Field(None, ge=1, le=1_000_000)
    max_invalid: int = Field(0, ge=0)
    marks: list[Literal["slow", "gpu"]] = Field(default_factory=list)


class SuiteSpec(_Strict):
    """A whole suite file."""

    suite: Slug
    description: str = ""
    seed: int = Field(0, ge=0, le=2**31 - 1)
    defaults: dict[str, Any] = Field(default_factory=dict)
    max_cases: int = Field(512, ge=1, le=100_000)
    cases: list[dict[str, Any]] = Field(min_length=1)


# Sweep axes and the field each one sets: ("inference", "guidance_scale") means case.inference.guidance_scale.
SWEEP_AXES: dict[str, tuple[str, ...]] = {
    "seed": ("seed",),
    "device": ("device",),
    "cpu_threads": ("cpu_threads",),
    "image_guidance_scale": ("inference", "image_guidance_scale"),
    "guidance_scale": ("inference", "guidance_scale"),
    "num_inference_steps": ("inference", "num_inference_steps"),
    "strength": ("inference", "strength"),
    "scheduler": ("inference", "scheduler"),
    "image_size": ("data", "image_size"),
    "dtype": ("model", "dtype"),
    "attention": ("model", "attention"),
    "compile": ("model", "compile"),
    "channels_last": ("model", "channels_last"),
    "latent_dim": ("model", "latent_dim"),
    "epochs": ("train", "epochs"),
    "batch_size": ("train", "batch_size"),
    "lr": ("train", "lr"),
    "loss": ("model", "loss"),
    "lambda_l1": ("model", "lambda_l1"),
    "lambda_cycle": ("model", "lambda_cycle"),
    "lambda_identity": ("model", "lambda_identity"),
}
# Axes that only make sense for some tasks.
AXIS_TASKS: dict[str, set[str]] = {
    "image_guidance_scale": {"edit"},
    "guidance_scale": {"edit", "text-to-image"},
    "num_inference_steps": {"edit", "text-to-image"},
    "strength": {"edit"},
    "scheduler": {"edit", "text-to-image"},
    "attention": {"edit", "text-to-image"},
    "compile": {"edit", "text-to-image"},
    "channels_last": {"edit", "text-to-image"},
    "latent_dim": {"generate"},
    "epochs": {"colorize", "generate", "translate", "text-to-image", "edit"},
    "batch_size": {"colorize", "generate", "translate", "text-to-image", "edit"},
    "lr": {"colorize", "generate", "translate", "text-to-image", "edit"},
    "loss": {"translate"},
    "lambda_l1": {"translate"},
    "lambda_cycle": {"translate"},
    "lambda_identity": {"translate"},
}
# Tasks whose sweeps can run guidance points batched (``inference.batch_sweep`` / ``max_batch``).
BATCH_TASKS = {"edit", "text-to-image"}
DEVICE_PATTERN = r"^(cpu|cuda(:\d+)?)$"
GATE_PATTERN = r"^\s*(>=|<=|>|<)\s*([-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*$"
# A gate relative to a reference row of the same case: "> gray-copy", "<= 0.5 * untrained".
REFERENCE_GATE_PATTERN = (r"^\s*(>=|<=|>|<)\s*(?:([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*\*\s*)?"
                          r"([A-Za-z][A-Za-z0-9_.-]*)\s*$")
TOLERANCE_PATTERN = r"^\s*(\d+(\.\d*)?|\.\d+)\s*(%?)\s*$"
