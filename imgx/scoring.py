"""Score images made elsewhere from Python (:func:`score`) or the command line (``imgx score``).

Both build a one-case suite of ``task: score`` (:mod:`imgx.tasks.score`), write it into the run directory as
``score.yaml`` and run it through the runner like any suite, so the run directory, ``results.csv``, the report,
baselines and ``imgx run score.yaml`` to reproduce are those of every task.
"""

from __future__ import annotations

import csv
import functools
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from imgx.errors import DataError, RunDirError, SuiteError

if TYPE_CHECKING:  # numpy and pandas load when scoring runs, not at ``import imgx``
    import numpy as np
    import pandas as pd

ImagesLike = Union[str, Path, "np.ndarray", Sequence["np.ndarray"]]  # noqa: UP007 - a runtime alias with strings
FIELDS = ("outputs", "target", "input", "reference", "prompts")
_DATA_KEY = {"outputs": "path", "target": "target", "input": "input", "reference": "reference", "prompts": "prompts"}
_PROBLEM = re.compile(r"^.*?:\d+: cases\[0\]\.(?P<field>[\w.\[\]]+): (?P<message>.*)$")


def default_metrics(target: Any = None, input: Any = None, reference: Any = None, prompts: Any = None) -> list[str]:
    """The metrics the given folders allow, when none are named: pixel metrics, input SSIM, FID/KID, CLIP score."""
    metrics = []
    if target is not None:
        metrics += ["mse", "psnr", "ssim"]
    if input is not None:
        metrics += ["input_ssim"]
    if reference is not None:
        metrics += ["fid", "kid"]
    if prompts is not None:
        metrics += ["clip_score"]
    return metrics


def score_suite(folders: Mapping[str, str | None], metrics: Sequence[str] | None = None, *,
                features: str | None = None, clip_model: str | None = None, image_size: int | None = None,
                seed: int = 0, device: str = "cpu", case_id: str | None = None) -> dict[str, Any]:
    """The one-case ``task: score`` suite for ``folders`` (keys of :data:`FIELDS`, absolute paths or None)."""
    from imgx.imageio import slug

    given = {k: str(Path(v).expanduser().resolve()) for k, v in folders.items() if v is not None}
    metrics = list(metrics) if metrics else default_metrics(*(given.get(k) for k in FIELDS[1:]))
    data: dict[str, Any] = {"name": "outputs", **{_DATA_KEY[k]: v for k, v in given.items()}}
    if image_size:
        data["image_size"] = int(image_size)
    options: dict[str, dict[str, Any]] = {}
    for m in metrics:
        if features and m in ("fid", "kid"):
            options[m] = {"features": features}
        if clip_model and m in ("clip_score", "clip_image_similarity"):
            options[m] = {"model": clip_model}
    case = {"id": case_id or slug(Path(given.get("outputs", "outputs")).name, 60), "task": "score",
            "model": {"name": "outputs"}, "data": data, "metrics": metrics, "device": device}
    if options:
        case["metric_options"] = options
    return {"suite": "score", "description": "images made elsewhere, scored by imgx score", "seed": int(seed),
            "cases": [case]}


def check_suite(suite: dict[str, Any], names: Mapping[str, str]) -> None:
    """Validate a score suite before anything is written; messages name the flag or argument, not the YAML.

    Args:
        suite: from :func:`score_suite`.
        names: how the caller spells each field (``{"target": "--target", ...}``), keys of :data:`FIELDS`.

    Raises:
        SuiteError: one message per problem.
    """
    from imgx.suite import load_suite

    with tempfile.TemporaryDirectory(prefix="imgx-score-") as tmp:
        path = Path(tmp) / "score.yaml"
        _write_yaml(path, suite)
        try:
            load_suite(path)
        except SuiteError as exc:
            raise SuiteError(list(dict.fromkeys(_for_caller(p, names) for p in exc.problems()))) from None


def _for_caller(problem: str, names: Mapping[str, str]) -> str:
    """``/tmp/x/score.yaml:7: cases[0].data.target: msg`` → ``--target: msg``."""
    m = _PROBLEM.match(problem)
    if not m:
        return problem
    field = m["field"]
    flag = {f"data.{key}": names[k] for k, key in _DATA_KEY.items()}.get(field)
    if flag is None:
        flag = names.get("metrics", "metrics") if field.startswith("metrics") else names.get(field, field)
        if field.startswith("metric_options"):
            flag = names.get("features", field) if field.endswith("features") else names.get("clip_model", field)
    return f"{flag}: {m['message']}"


def _write_yaml(path: Path, suite: dict[str, Any]) -> None:
    import yaml

    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")


def run_score(suite: dict[str, Any], out: str | Path, *, quiet: bool = True, report: bool = True,
              argv: list[str] | None = None, on_case=None):
    """Write ``OUT/score.yaml`` and run it into ``OUT``; returns the runner's summary."""
    from imgx.runner import run_suite

    out = Path(out)
    data = suite["cases"][0]["data"]
    for key in ("path", "target", "input", "reference"):
        if data.get(key) and out.resolve().is_relative_to(Path(data[key]).resolve()):
            raise RunDirError(f"--out {out}: inside the {key} folder {data[key]}; the run's files would be scored "
                              "next time. Choose an --out outside it")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "score.yaml"
    _write_yaml(path, suite)
    return run_suite(path, out, quiet=quiet, report=report, argv=argv or ["imgx.score"], on_case=on_case)


def _to_uint8(images: np.ndarray, name: str) -> np.ndarray:
    """``(N, H, W, 3)`` / ``(N, H, W)`` uint8, or float in ``[0, 1]`` (rounded to 8 bits, as a saved image is)."""
    import numpy as np

    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(f"{name}: expected images (N, H, W, 3) or (N, H, W), got shape {x.shape}")
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{name}: expected uint8 or float images, got {x.dtype}")
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise DataError(f"{name}: float images must be finite and in [0, 1] (got {x.min():.4g}..{x.max():.4g})")
    return np.round(x * 255.0).astype(np.uint8)


def _materialise(value: ImagesLike | None, name: str, folder: Path) -> str | None:
    """A folder path as is; arrays written as lossless PNGs ``00000.png``... into ``folder/name``."""
    import numpy as np
    from PIL import Image

    if value is None or isinstance(value, str | Path):
        return None if value is None else str(value)
    arrays = _to_uint8(np.stack([np.asarray(a) for a in value]) if not isinstance(value, np.ndarray) else value, name)
    target = folder / name
    if target.exists():  # images of an earlier call with the same out= would be matched with these
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for i, a in enumerate(arrays):
        Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(target / f"{i:05d}.png")
    return str(target)


def _prompts_csv(prompts: Any, count: int | None, folder: Path) -> str | None:
    """A CSV path as is; a list (one prompt per array image) or a ``{name: prompt}`` mapping written as a CSV."""
    if prompts is None or isinstance(prompts, str | Path):
        return None if prompts is None else str(prompts)
    if isinstance(prompts, Mapping):
        rows = list(prompts.items())
    else:
        prompts = list(prompts)
        if count is not None and len(prompts) != count:
            raise DataError(f"prompts: {len(prompts)} prompts for {count} output images")
        rows = [(f"{i:05d}", p) for i, p in enumerate(prompts)]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "prompts.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "prompt"])
        writer.writerows(rows)
    return str(path)


def score(outputs: ImagesLike, target: ImagesLike | None = None, input: ImagesLike | None = None,
          reference: ImagesLike | None = None, prompts: str | Path | Sequence[str] | Mapping[str, str] | None = None,
          metrics: Sequence[str] | None = None, *, features: str | None = None, clip_model: str | None = None,
          image_size: int | None = None, seed: int = 0, device: str = "cpu",
          out: str | Path | None = None) -> pd.DataFrame:
    """Score images made elsewhere; returns the run's ``results.csv`` rows as a pandas DataFrame.

    Folders are matched by file name without the suffix; arrays ``(N, H, W, 3)`` (uint8, or float in ``[0, 1]``,
    rounded to 8 bits) are matched by position. ``result["ssim"]`` is the value of the outputs' own ``ssim`` row
    (no reference), so ``assert imgx.score(out, target=truth)["ssim"] > 0.8`` reads as it says.

    Args:
        outputs: the images to score (folder or arrays).
        target: what each output should be (``mse``, ``psnr``, ``ssim``, ``target_*``).
        input: what the model was given (``input_ssim``, ``clip_image_similarity``, ``identity`` rows).
        reference: real images for ``fid`` / ``kid`` (any count).
        prompts: a ``file,prompt`` CSV, one prompt per output array, or ``{name: prompt}`` (``clip_score``).
        metrics: metric names; by default what the given folders allow (:func:`default_metrics`).
        features: the FID/KID feature extractor (default ``inception-v3``).
        clip_model: the CLIP model for the CLIP metrics (hub id or local folder).
        image_size: the square size of FID/KID and CLIP images (default the outputs' smaller side, at most 299).
        seed: bootstrap and reference-split seed.
        device: ``cpu`` or ``cuda``.
        out: keep the run directory there (``out`` in the frame's ``attrs["run_dir"]``); by default a temporary one.

    Raises:
        imgx.errors.ImgxError: bad input (missing folder, unmatched names, unknown metric), before anything runs.
    """
    with tempfile.TemporaryDirectory(prefix="imgx-score-") as tmp:
        run_dir = Path(out) if out is not None else Path(tmp) / "run"
        arrays = (run_dir if out is not None else Path(tmp)) / "arrays"
        count = len(outputs) if not isinstance(outputs, str | Path) else None
        given = {"outputs": outputs, "target": target, "input": input, "reference": reference}
        folders = {k: _materialise(v, k, arrays) for k, v in given.items()}
        folders["prompts"] = _prompts_csv(prompts, count, arrays)
        suite = score_suite(folders, metrics, features=features, clip_model=clip_model, image_size=image_size,
                            seed=seed, device=device, case_id="outputs" if count is not None else None)
        check_suite(suite, {k: k for k in (*FIELDS, "metrics", "features", "clip_model")})
        summary = run_score(suite, run_dir, report=out is not None)
        frame = results_frame(summary.out / "results.csv")
    if out is not None:
        frame.attrs["run_dir"] = str(run_dir)
    return frame


def results_frame(path: str | Path) -> pd.DataFrame:
    """``results.csv`` as a :class:`Scores` frame: numbers as floats, empty text as ``""``."""
    import pandas as pd

    frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    for column in ("value", "n", "ci_low", "ci_high"):
        frame[column] = pd.to_numeric(frame[column].replace("", None), errors="coerce")
    return _scores_class()(frame)


@functools.cache
def _scores_class():
    import pandas as pd

    class Scores(pd.DataFrame):
        """``results.csv`` rows; ``scores["ssim"]`` is the value of the outputs' own ``ssim`` row."""

        @property
        def _constructor(self):
            return Scores

        def __getitem__(self, key):
            if isinstance(key, str) and key not in self.columns and "metric" in self.columns:
                own = super().__getitem__((super().__getitem__("metric") == key)
                                          & (super().__getitem__("reference") == ""))
                if len(own) == 0:
                    known = ", ".join(sorted(set(super().__getitem__("metric"))))
                    raise KeyError(f"{key!r} is neither a column nor a metric of these results ({known})")
                row = own.iloc[0]
                if row["status"] != "ok":
                    raise KeyError(f"{key!r} is {row['status']}: {row['detail']}")
                return float(row["value"])
            return super().__getitem__(key)

    return Scores
