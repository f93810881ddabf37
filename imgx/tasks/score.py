"""The ``score`` task: images made elsewhere, scored with the metrics, references and run directory of every task.

No model runs: ``data: outputs`` names the folder of outputs and what they are judged against
(:mod:`imgx.data.outputs`, matched by file name). Each output is decoded once; its target and input are resized to
its size (LANCZOS) where they differ, as the edit task does with its inputs, and the rows say how many were.

- ``mse``, ``psnr``, ``ssim`` (also under the edit task's names ``target_mse``, ``target_psnr``, ``target_ssim``):
  output vs its target on ``[0, 1]`` RGB, data_range 1.0 (skimage's definitions), mean over images with a
  bootstrap CI; with inputs, an ``identity`` row (the input copied through: what a model must beat).
- ``input_ssim``: output vs its input (how much of the input survives).
- ``fid``, ``kid``: the outputs against the ``reference`` folder in the extractor ``metric_options.<m>.features``
  names (default ``inception-v3``, the standard; ``unavailable`` with the reason where its weights are absent).
  The reference is split by the case seed: the held-out part is the real set of every row, the rest gives the
  ``real-split`` row (real images against real images at the outputs' count where the reference allows: the
  floor); with inputs, an ``identity`` row. All sets are centre-cropped to squares of one size. Scored images
  identical to one of the held-out real set are left out, with a warning in the row (a copy of the reference
  scores the floor, not 0).
- ``clip_score`` (output vs its prompt; ``input-copy`` row with inputs), ``clip_image_similarity`` (input vs
  output) and ``prompt_accuracy`` (prompts that name a digit, judged by the digits classifier), as in the
  text-to-image and edit tasks.

``outputs.csv`` gets one row per scored file (its path where it is; nothing is copied) with its own pixel metric
values, so the worst outputs can be found by sorting.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from imgx.data import DATASETS
from imgx.results import CaseResult, MetricRow

OUTPUTS = "images made elsewhere: task score reads them from data: outputs; nothing is loaded or run"
PIXEL = {"mse": "mse", "psnr": "psnr", "ssim": "ssim", "target_mse": "mse", "target_psnr": "psnr",
         "target_ssim": "ssim"}
DISTRIBUTION = ("fid", "kid")
NEEDS = {**dict.fromkeys(PIXEL, "target"), "input_ssim": "input", "clip_image_similarity": "input",
         "fid": "reference", "kid": "reference", "clip_score": "prompts", "prompt_accuracy": "prompts"}
NEEDS_TEXT = {"target": "a target folder (data.target; imgx score --target DIR)",
              "input": "an input folder (data.input; imgx score --input DIR)",
              "reference": "a reference folder of real images (data.reference; imgx score --reference DIR)",
              "prompts": "a prompts CSV with columns file,prompt (data.prompts; imgx score --prompts CSV)"}
DEFAULT_FEATURES = "inception-v3"
MAX_SIZE = 299  # the largest input of the extractors and CLIP (Inception 299, CLIP/EfficientNet 224)
GRID_IMAGES = 8


def score_problems(case) -> list[tuple[tuple, str]]:
    """``(field path, message)`` for what a score case lacks or its folders get wrong (names only, no decoding)."""
    from imgx.data.outputs import match

    data = case.data
    if data.name != "outputs":
        return []  # refused by the data set check (only 'outputs' feeds task score)
    problems: list[tuple[tuple, str]] = []
    if not case.metrics:
        problems.append((("metrics",), "nothing to score: name metrics (psnr, ssim with a target folder; fid, kid "
                                       "with a reference folder; clip_score with prompts)"))
    for i, metric in enumerate(case.metrics):
        need = NEEDS.get(metric)
        if need and not getattr(data, need):
            problems.append((("metrics", i), f"{metric!r} needs {NEEDS_TEXT[need]}"))
    _, found = match(data)
    missing = data.path and not Path(data.path).exists()  # reported by the path check already
    return problems + [(("data", field), message) for field, message in found if not (missing and field == "path")]


def _like(path: Path, out: np.ndarray) -> tuple[np.ndarray, bool]:
    """The image at ``path`` as ``(H, W, 3)`` uint8 at the output's size, and whether it was resized."""
    from imgx.imageio import open_rgb
    from imgx.tasks.edit import input_like

    image = open_rgb(path)
    return input_like(image, out), image.size != (out.shape[1], out.shape[0])


class _Values:
    """Per-image values of one (metric, reference); an error (SSIM on a tiny image) replaces them."""

    def __init__(self):
        self.values: list[float] = []
        self.error: str | None = None

    def add(self, kind: str, a: np.ndarray, b: np.ndarray) -> None:
        from imgx.imageio import arrays_to_unit
        from imgx.metrics.pixel import PIXEL_METRICS

        if self.error is None:
            try:
                self.values.append(float(PIXEL_METRICS[kind](arrays_to_unit([a]), arrays_to_unit([b]))[0]))
            except ValueError as exc:
                self.error = str(exc)


def _row(metric: str, v: _Values, reference: str, detail: str, seed: int) -> MetricRow:
    from imgx.metrics import metric_info
    from imgx.metrics.stats import mean_with_ci

    unit = metric_info(metric).unit
    if v.error:
        return MetricRow(metric, None, unit, reference, status="unavailable", detail=v.error)
    values = np.asarray(v.values)
    if not np.isfinite(values).all():
        return MetricRow(metric, None, unit, reference, status="unavailable", detail=(
            f"{int((~np.isfinite(values)).sum())} of {len(values)} images equal what they are compared with "
            "exactly: PSNR is infinite"))
    mean, low, high, n = mean_with_ci(values, seed=seed)
    return MetricRow(metric, mean, unit, reference, n, low, high, detail=detail)


def run(case, ctx) -> CaseResult:
    """Score one folder of images made elsewhere; see the module docstring."""
    from imgx.data.photos import square
    from imgx.imageio import open_rgb

    spec = case.spec
    data = DATASETS.get(spec.data.name)(spec.data, case.seed, "score")
    files = data["files"]
    names = files.names
    metrics = spec.metrics
    kinds = {PIXEL[m] for m in metrics if m in PIXEL}
    keep_all = any(m in DISTRIBUTION or m.startswith("clip_") or m == "prompt_accuracy" for m in metrics)
    values: dict[tuple[str, str], _Values] = {}
    resized = {"target": 0, "input": 0}
    size: int | None = None
    squares: dict[str, list[np.ndarray]] = {"outputs": [], "inputs": [], "targets": []}

    for i, name in enumerate(ctx.progress(names, desc=case.id)):
        out = np.asarray(open_rgb(files.outputs[name]))
        size = size or spec.data.image_size or min(MAX_SIZE, *out.shape[:2])
        target = inp = None
        if files.targets is not None:
            target, changed = _like(files.targets[name], out)
            resized["target"] += changed
        if files.inputs is not None:
            inp, changed = _like(files.inputs[name], out)
            resized["input"] += changed
        for kind in kinds:
            values.setdefault((kind, ""), _Values()).add(kind, out, target)
            if inp is not None:
                values.setdefault((kind, "identity"), _Values()).add(kind, inp, target)
        if "input_ssim" in metrics:
            values.setdefault(("ssim", "input"), _Values()).add("ssim", out, inp)
        for key, image in (("outputs", out), ("inputs", inp), ("targets", target)):
            # Outputs and inputs feed FID/KID and CLIP; targets only the grid.
            if image is not None and (i < GRID_IMAGES or (keep_all and key != "targets")):
                squares[key].append(np.asarray(square(image, size)))

    note = "; ".join(f"{n} {side}(s) resized (LANCZOS) to their output's size" for side, n in resized.items() if n)
    rows: list[MetricRow] = []
    for metric in metrics:
        if metric in PIXEL:
            kind = PIXEL[metric]
            detail = "output vs its target, data_range=1.0 on [0,1] RGB" + (f"; {note}" if note else "")
            rows.append(_row(metric, values[kind, ""], "", detail, case.seed))
            if files.inputs is not None:
                rows.append(_row(metric, values[kind, "identity"], "identity",
                                 f"identity: the input copied through, vs the target; {detail}", case.seed))
        elif metric == "input_ssim":
            rows.append(_row(metric, values["ssim", "input"], "", "output vs its input, data_range=1.0"
                             + (f"; {note}" if note else ""), case.seed))
    info: dict[str, Any] = {"data": data["info"], "image_size": size,
                            "size_rule": f"distribution, CLIP and grid images centre-cropped to squares and resized "
                                         f"(LANCZOS) to {size}px", "resized": resized}
    rows += _distribution_rows(case, ctx, files, squares, size, info)
    rows += _prompt_rows(case, ctx, files, names, squares, info)
    return CaseResult(rows=rows, outputs=_per_image(files, names, values), artifacts=_grid(ctx, case, squares),
                      info=info)


def _per_image(files, names: list[str], values: dict[tuple[str, str], _Values]) -> list[dict[str, Any]]:
    """``outputs.csv`` rows: each scored file (where it is, not copied) with its own pixel metric values."""
    own = {("input_ssim" if against == "input" else kind): v for (kind, against), v in values.items()
           if against in ("", "input") and v.error is None}
    rows = []
    for i, name in enumerate(names):
        row: dict[str, Any] = {"name": name, "path": str(files.outputs[name])}
        for side, found in (("input_path", files.inputs), ("target_path", files.targets)):
            if found is not None:
                row[side] = str(found[name])
        if files.prompts:
            row["prompt"] = files.prompts[name]
        row.update({metric: v.values[i] for metric, v in sorted(own.items())})
        rows.append(row)
    return rows


def _tensor(arrays: list[np.ndarray]):
    from imgx.imageio import array_to_tensor

    return array_to_tensor(np.stack(arrays))


def _extractor_for(case, ctx, name: str, options: dict[str, Any]):
    """The feature extractor (the digits classifier trains on the embedded digits, as text-to-image's)."""
    from imgx.suite.schema import DataSpec
    from imgx.tasks.generate import _extractor
    from imgx.tasks.text_to_image import _on_data

    if name == "digits-classifier":
        spec = DataSpec(name="digits")
        return _extractor(name, options, DATASETS.get("digits")(spec, case.seed, "generate"), _on_data(case, spec),
                          ctx)
    return _extractor(name, options, {}, case, ctx)


def _distribution_rows(case, ctx, files, squares, size, info) -> list[MetricRow]:
    """FID/KID of the outputs (and the inputs, and real images) against the held-out part of the reference."""
    from imgx.data.photos import square
    from imgx.imageio import open_rgb
    from imgx.metrics.features import FeaturesUnavailable
    from imgx.tasks.generate import _score
    from imgx.tasks.text_to_image import FID_MIN_IMAGES

    wanted = [m for m in case.spec.metrics if m in DISTRIBUTION]
    if not wanted:
        return []
    reference = [np.asarray(square(np.asarray(open_rgb(p)), size)) for p in files.reference]
    order = np.random.default_rng(case.seed).permutation(len(reference))
    n_floor = min(len(squares["outputs"]), len(reference) // 2)
    floor = [reference[i] for i in order[:n_floor]]
    real = [reference[i] for i in order[n_floor:]]
    split = (f"reference {case.spec.data.reference}: {len(real)} of {len(reference)} images held out as the real "
             f"set (seed {case.seed}); images centre-cropped to {size}px squares")
    sets = {"": squares["outputs"], "real-split": floor}
    if files.inputs is not None:
        sets["identity"] = squares["inputs"]
    notes = {"": "", "real-split": f"; real-split: {n_floor} other reference images (the floor)",
             "identity": "; identity: the inputs copied through"}
    # An image of the real set among the scored ones would be compared with itself: held out means held out.
    held_out = {a.tobytes() for a in real}
    for ref in ("", "identity"):
        if ref in sets:
            kept = [a for a in sets[ref] if a.tobytes() not in held_out]
            if len(kept) < len(sets[ref]):
                notes[ref] += (f"; WARNING: {len(sets[ref]) - len(kept)} of {len(sets[ref])} images are identical to "
                               "images of the held-out real set (copied or memorised) and were left out")
                sets[ref] = kept
    rows: list[MetricRow] = []
    per_metric: dict[str, Any] = {}
    features: dict[tuple[int, str], np.ndarray] = {}
    for m in wanted:
        options = dict(case.spec.metric_options.get(m, {}))
        name = options.get("features", DEFAULT_FEATURES)
        try:
            ex = _extractor_for(case, ctx, name, options)
        except FeaturesUnavailable as exc:
            rows += [MetricRow(m, None, "", ref, status="unavailable", detail=f"{exc}; choose another extractor "
                               "with metric_options.<metric>.features (imgx score --features)") for ref in sets]
            continue
        per_ref = []
        for ref, images in sets.items():
            if min(len(images), len(real)) < FID_MIN_IMAGES:
                rows.append(MetricRow(m, None, "", ref, status="unavailable", detail=(
                    f"too few images for {m.upper()}: {len(images)} scored, {len(real)} real (held-out reference); "
                    f"imgx refuses below {FID_MIN_IMAGES}" + notes[ref])))
                continue
            for key, arrays in (("real", real), (ref, images)):
                if (id(ex), key) not in features:
                    features[id(ex), key] = ex(_tensor(arrays))
            row, ref_info = _score(m, ex, features[id(ex), "real"], features[id(ex), ref], ref, options, case.seed)
            row.detail += f"; {split}{notes[ref]}"
            rows.append(row)
            per_ref.append(ref_info)
        per_metric[m] = {**ex.describe(), "real_set": split, "references": per_ref}
    info["metrics"] = per_metric
    return rows


def _prompt_rows(case, ctx, files, names, squares, info) -> list[MetricRow]:
    """``clip_score``, ``clip_image_similarity`` and ``prompt_accuracy``, through the other tasks' code."""
    from imgx.tasks import text_to_image as t2i

    metrics = case.spec.metrics
    valid = list(range(len(names)))
    samples = [SimpleNamespace(prompt=files.prompts[n]) for n in names] if files.prompts else []
    rows: list[MetricRow] = []
    if "clip_score" in metrics:
        rows += t2i._clip_rows(case, ctx, {}, squares["outputs"], samples, valid, info, {})
        if files.inputs is not None and rows[-1].status == "ok":
            rows += _clip_pairs(case, ctx, "clip_score", squares["inputs"], [s.prompt for s in samples], "input-copy",
                                "the unedited input vs the prompt: the score before any change")
    if "clip_image_similarity" in metrics:
        rows += _clip_pairs(case, ctx, "clip_image_similarity", squares["inputs"], squares["outputs"], "",
                            "cosine(input image, output image)")
    if "prompt_accuracy" in metrics:
        rows += t2i._prompt_rows(case, ctx, _tensor(squares["outputs"]), samples, valid, None, {})
    return rows


def _clip_pairs(case, ctx, metric: str, images: list[np.ndarray], others: list, reference: str,
                detail: str) -> list[MetricRow]:
    """A CLIP row from images and, pairwise, prompts (``clip_score``) or other images (image similarity)."""
    from PIL import Image

    from imgx.metrics.clip import DEFAULT_CLIP, ClipUnavailable, clip_score, get_embedder, image_similarity
    from imgx.metrics.stats import mean_with_ci

    name = str(case.spec.metric_options.get(metric, {}).get("model", DEFAULT_CLIP))
    try:
        emb = get_embedder(name, case.device, ctx.resources)
    except ClipUnavailable as exc:
        return [MetricRow(metric, None, "", reference, status="unavailable", detail=str(exc))]
    embeds = emb.images([Image.fromarray(a) for a in images])
    if metric == "clip_score":
        values = clip_score(embeds, emb.texts(list(others)).embeds)
    else:
        values = image_similarity(embeds, emb.images([Image.fromarray(a) for a in others]))
    mean, low, high, n = mean_with_ci(values.numpy(), seed=case.seed)
    return [MetricRow(metric, mean, "", reference, n, low, high, detail=f"{detail}; CLIP {name}")]


def _grid(ctx, case, squares) -> dict[str, Any]:
    """Inputs, outputs and targets of the first images, one row each."""
    from PIL import Image

    from imgx.imageio import grid

    labels = {"inputs": "input", "outputs": "output (made elsewhere)", "targets": "target"}
    side = 64
    rows, names = [], []
    for key in ("inputs", "outputs", "targets"):
        if squares[key]:
            rows.append(np.stack([np.asarray(Image.fromarray(a).resize((side, side), Image.Resampling.LANCZOS))
                                  for a in squares[key][:GRID_IMAGES]]))
            names.append(labels[key])
    return {"grid": ctx.save_image(grid(rows), case.id, "grid"), "grid_rows": names}
