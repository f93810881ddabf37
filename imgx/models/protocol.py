"""What a model must be, per task: the one protocol the built-in models and the user's models both go through.

A suite names a model by a built-in name, an ``imgx.models`` entry point of another package, or an import path
``pkg.module:attr`` (:meth:`imgx.registry.Registry.resolve`). The other ``model:`` keys are keyword arguments.

- ``colorize`` / ``translate`` (paired): a factory (a class or a function) returning an :class:`ImageToImage`
  ``torch.nn.Module``: ``(N, C_in, H, W)`` in ``[-1, 1]`` to ``(N, C_out, H, W)`` in ``[-1, 1]``. imgx trains it
  with its own loop, or loads ``model.checkpoint`` (a safetensors ``state_dict``) and only evaluates it.
- ``generate``: a factory returning a :class:`GenerativeModel`: ``latent_dim``, a ``generator`` (noise
  ``(N, latent_dim)`` to ``(N, C, S, S)`` in ``[-1, 1]``) and, when imgx trains it, a ``discriminator`` whose
  ``logits(x)`` gives ``(N,)``.
- ``edit`` / ``text-to-image``: an :class:`EditModel` / :class:`TextToImageModel` callable (or a factory returning
  one) that gets the case's inputs and one seed per output, plus the ``inference:`` settings and sweep axes its
  signature accepts, and returns one image per output (see :mod:`imgx.tasks.user_callable`).

A factory also receives the shape keywords its signature accepts (``in_channels``, ``out_channels``, ``channels``,
``image_size``), so one class serves any data. Contract breaches found while a case runs raise :class:`ModelError`:
the case is recorded ``failed`` with the reason, never ``ok``.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from imgx.models import MODELS
from imgx.registry import is_import_path

if TYPE_CHECKING:
    import torch
    from PIL import Image

# The inputs a callable model of each task receives first, by name (keywords): how a callable is told from a factory.
CALL_INPUTS = {"edit": ("images", "instructions", "seeds"), "text-to-image": ("prompts", "seeds")}
CALLABLE_TASKS = set(CALL_INPUTS)
MODULE_TASKS = {"colorize", "translate", "generate"}
CHECKPOINT_TASKS = MODULE_TASKS
# Fields of ``model:`` that default to None and reach a user's model as keyword arguments when set.
USER_FIELDS = ("latent_dim", "loss", "lambda_l1", "lambda_cycle", "lambda_identity", "depth", "width", "blocks")


@runtime_checkable
class ImageToImage(Protocol):
    """``colorize`` / paired ``translate``: a ``torch.nn.Module`` from input images to output images."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C_in, H, W)`` in ``[-1, 1]`` → ``(N, C_out, H, W)`` in ``[-1, 1]``."""

    def parameters(self, recurse: bool = True): ...

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...


@runtime_checkable
class GenerativeModel(Protocol):
    """``generate``: a generator from noise and (for training) a discriminator, as :class:`~imgx.models.dcgan.DCGAN`."""

    latent_dim: int
    generator: torch.nn.Module
    discriminator: torch.nn.Module


ImageLike = "Image.Image | np.ndarray"  # (H, W, 3) uint8, or float in [0, 1]


class EditModel(Protocol):
    """``edit``: edits ``images`` as ``instructions`` say, one output per input; ``seeds`` seed each output."""

    def __call__(self, images: list[Image.Image], instructions: list[str], seeds: list[int],
                 **settings: Any) -> Sequence[Any]: ...


class TextToImageModel(Protocol):
    """``text-to-image``: one image per prompt, ``seeds`` seeding each output."""

    def __call__(self, prompts: list[str], seeds: list[int], **settings: Any) -> Sequence[Any]: ...


class ModelError(RuntimeError):
    """A model broke its task's protocol while a case ran (wrong type, shape, dtype, NaN); the case fails."""


def origin(name: str) -> str:
    """How a model name resolves, for messages: ``module 'pkg.mod' (import path)``, an entry point, or built-in."""
    if is_import_path(name) and name not in MODELS:
        return f"{name} (import path)"
    meta = MODELS.meta(name) if name in MODELS else {}
    if meta.get("plugin"):
        return f"{name} (entry point of {meta['plugin']})"
    return f"{name} (built-in)"


def is_user_model(name: str) -> bool:
    """Whether the suite names a model by import path or entry point (its task is known only once imported)."""
    return (is_import_path(name) and name not in MODELS) or bool(name in MODELS and MODELS.meta(name).get("plugin"))


def uses_pipeline(name: str) -> bool:
    """Whether an edit / text-to-image model is a diffusers pipeline loader (else the callable protocol)."""
    return name in MODELS and bool(MODELS.meta(name).get("pipeline"))


def model_kwargs(model_spec: Any) -> dict[str, Any]:
    """The keyword arguments of the ``model:`` mapping: a built-in's options that are set, or a user model's keys."""
    name = model_spec.name
    if name in MODELS and MODELS.meta(name).get("options") is not None:
        options = MODELS.meta(name)["options"]
        return {k: getattr(model_spec, k) for k in sorted(options) if getattr(model_spec, k, None) is not None}
    # A user's model: its own keys, and the optional built-in keys it was given (latent_dim, width...: sweep axes).
    given = {k: getattr(model_spec, k) for k in USER_FIELDS if getattr(model_spec, k, None) is not None}
    return {**given, **dict(model_spec.model_extra or {})}


def accepts(fn: Callable, name: str) -> bool:
    """Whether ``fn`` takes a keyword ``name`` (or ``**kwargs``)."""
    params = _parameters(fn)
    return params is None or name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def accepted_names(fn: Callable) -> list[str] | None:
    """The keyword names ``fn`` accepts, or None when it takes ``**kwargs`` (anything)."""
    params = _parameters(fn)
    if params is None or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _parameters(fn: Callable) -> dict[str, inspect.Parameter] | None:
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # builtins without a signature: assume they take anything
        return None


def is_task_callable(obj: Any, task: str) -> bool:
    """Whether ``obj`` is the task's callable itself (takes its inputs by name) rather than a factory of one."""
    if inspect.isclass(obj) or not callable(obj):
        return False
    params = _parameters(obj)
    return params is not None and all(name in params for name in CALL_INPUTS[task])


def build(case: Any, task: str, **shape: Any) -> Any:
    """Resolve the case's model and build it: the factory gets the ``model:`` keys and the shape keys it accepts.

    Raises:
        ModelError: the factory raised, or returned something that is not the task's protocol.
    """
    name = case.spec.model.name
    factory = MODELS.resolve(name)
    if not callable(factory):
        raise ModelError(f"model {origin(name)} is a {type(factory).__name__}, not a class or a function")
    kwargs = model_kwargs(case.spec.model)
    if task in CALLABLE_TASKS and is_task_callable(factory, task):
        return factory  # the callable itself; its keyword arguments come with every call
    import torch

    if isinstance(factory, torch.nn.Module) and task in MODULE_TASKS:  # an instance: each case trains its own copy
        if kwargs:
            raise ModelError(f"model {origin(name)} is a module instance; it takes no model: keys "
                             f"({', '.join(kwargs)})")
        obj = copy.deepcopy(factory)
        check_type(obj, task, name)
        return obj
    params = _parameters(factory) or {}
    named = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    # Shape keys go only to a factory that names them, not to a **kwargs that may pass them on to anything.
    kwargs.update({k: v for k, v in shape.items() if k not in kwargs and k in named})
    try:
        obj = factory(**kwargs)
    except Exception as exc:  # noqa: BLE001 - user code: the case fails with the reason
        raise ModelError(f"model {origin(name)} could not be built with {kwargs}: {type(exc).__name__}: {exc}") \
            from exc
    check_type(obj, task, name)
    return obj


def check_type(obj: Any, task: str, name: str) -> None:
    """Raise :class:`ModelError` unless ``obj`` is what the task's protocol asks for."""
    import torch

    what = f"model {origin(name)} returned a {type(obj).__name__}"
    if task in ("colorize", "translate") and not isinstance(obj, torch.nn.Module):
        raise ModelError(f"{what}, not a torch.nn.Module (task {task!r} trains or loads a module)")
    if task == "generate":
        if not isinstance(getattr(obj, "generator", None), torch.nn.Module) or \
                not isinstance(getattr(obj, "latent_dim", None), int):
            raise ModelError(f"{what} without the generate protocol: it needs latent_dim (int) and generator "
                             "(torch.nn.Module), and discriminator to be trained")
    if task in CALLABLE_TASKS and not callable(obj):
        raise ModelError(f"{what}, which is not callable")


def check_images(out: Any, expected: tuple[int, ...], name: str, what: str = "output") -> None:
    """Raise :class:`ModelError` unless ``out`` is a floating tensor of shape ``expected`` with finite values."""
    import torch

    if not isinstance(out, torch.Tensor):
        raise ModelError(f"model {origin(name)} returned a {type(out).__name__} as {what}, not a torch.Tensor")
    if tuple(out.shape) != tuple(expected):
        raise ModelError(f"model {origin(name)} returned {what} of shape {tuple(out.shape)}; expected "
                         f"{tuple(expected)} (N, C, H, W)")
    if not out.is_floating_point():
        raise ModelError(f"model {origin(name)} returned {what} of dtype {out.dtype}; expected a floating dtype")
    if not torch.isfinite(out).all():
        raise ModelError(f"model {origin(name)} returned non-finite values (NaN or inf) in its {what}")


def load_checkpoint(module: Any, path: str | Path, name: str) -> None:
    """Load a safetensors ``state_dict`` into ``module`` (strict: missing or unexpected keys are an error).

    Pickle files are never loaded (they can run code). Raises :class:`ModelError` saying what is wrong.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    head = path.read_bytes()[:8]
    if head[:1] == b"\x80" or head[:2] == b"PK":
        raise ModelError(f"checkpoint {path}: a pickle (torch.save) file; imgx loads safetensors only (pickle can run "
                         "code): save it with safetensors.torch.save_file(model.state_dict(), ...)")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"checkpoint {path}: not a readable safetensors file ({exc})") from None
    result = module.load_state_dict(state, strict=False)
    problems = []
    if result.missing_keys:
        problems.append(f"missing keys {_few(result.missing_keys)}")
    if result.unexpected_keys:
        problems.append(f"unexpected keys {_few(result.unexpected_keys)}")
    if problems:
        raise ModelError(f"checkpoint {path} does not fit model {origin(name)}: {'; '.join(problems)}")


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:5]) + (f" ... ({len(keys)} in all)" if len(keys) > 5 else "")


def save_checkpoint(ctx: Any, case: Any, module: Any) -> str:
    """Save a trained module's ``state_dict`` as ``models/<case>-<key>.safetensors``; returns the relative path.

    ``model.checkpoint`` of a later case evaluates it again without training.
    """
    from safetensors.torch import save_file

    from imgx.imageio import safe_name

    folder = ctx.out / "models"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (safe_name(case.id, suffix=".safetensors"))
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    tmp = path.with_name("." + path.name + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(path)
    return str(path.relative_to(ctx.out))


# ``inference:`` settings a callable model may take, by task (the others are imgx's own: warmup, repeats...).
INFERENCE_SETTINGS = {"edit": ("image_guidance_scale", "guidance_scale", "num_inference_steps", "scheduler"),
                      "text-to-image": ("guidance_scale", "num_inference_steps", "scheduler")}


def call_signature(obj: Any, task: str) -> Callable | None:
    """What a callable model is called through: the function itself, or a class's ``__call__``; None if unknown."""
    if is_task_callable(obj, task):
        return obj
    if inspect.isclass(obj) and "__call__" in {n for c in obj.__mro__[:-1] for n in vars(c)}:
        return obj.__call__
    return None  # a factory function: what it returns is known only once it is built (checked then)


def settings_for(case: Any, fn: Callable | None, task: str) -> dict[str, Any]:
    """The ``inference:`` settings (swept or not) a callable model accepts, and ``device`` when it names it."""
    settings = {k: getattr(case.spec.inference, k) for k in INFERENCE_SETTINGS[task]}
    if fn is None:
        return settings
    chosen = {k: v for k, v in settings.items() if accepts(fn, k)}
    if "device" in (accepted_names(fn) or []):  # the case's device, only to a callable that names it
        chosen["device"] = case.device
    return chosen


def signature_problems(spec: Any) -> list[tuple[tuple, str]]:
    """Import a case's user model and check it against the task's protocol, without building it.

    Returns ``(field path, message)`` pairs: the import failure, an attribute that is not callable, keyword
    arguments the factory does not take, sweep axes or ``inference:`` settings a callable model does not take.
    """
    from imgx.registry import ImportProblem, UnknownName

    name, task = spec.model.name, spec.task
    try:
        obj = MODELS.resolve(name)
    except (ImportProblem, UnknownName) as exc:
        return [(("model", "name"), f"model {origin(name)}: {exc}")]
    if not callable(obj):
        return [(("model", "name"), f"model {origin(name)} is a {type(obj).__name__}, not a class or a function")]
    problems: list[tuple[tuple, str]] = []
    fn = call_signature(obj, task) if task in CALLABLE_TASKS else None
    kwargs = model_kwargs(spec.model)
    accepted = accepted_names(obj)
    if accepted is not None and task in CALLABLE_TASKS and is_task_callable(obj, task):
        accepted = [a for a in accepted if a not in CALL_INPUTS[task]]
    for key in kwargs:
        if accepted is not None and key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append((("model", key), f"model {origin(name)} takes no keyword {key!r} ({hint}it takes "
                                             f"{', '.join(accepted) or 'none'})"))
    if fn is None:
        return problems
    accepted = accepted_names(fn)
    if accepted is None:
        return problems
    accepted = [a for a in accepted if a not in ("self", *CALL_INPUTS[task])]
    for axis in spec.sweep:
        if axis in INFERENCE_SETTINGS[task] and axis not in accepted:
            problems.append((("sweep", axis), f"sweep axis {axis!r}: model {origin(name)} does not accept it; it "
                                              f"accepts {', '.join(accepted) or 'no keyword'}"))
    for key in sorted(spec.inference.model_fields_set & set(INFERENCE_SETTINGS[task]) - set(spec.sweep)):
        if key not in accepted:
            problems.append((("inference", key), f"inference setting {key!r}: model {origin(name)} does not accept "
                                                 f"it; it accepts {', '.join(accepted) or 'no keyword'}"))
    return problems
