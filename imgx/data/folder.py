"""``folder`` (a user's own images, for any task) and ``edit-csv`` (image, instruction, captions per row).

Every file is opened through :func:`imgx.imageio.open_rgb`: grayscale, RGBA, palette and 16-bit images are
converted; empty, truncated, corrupt, non-image and oversized files are refused with the file named.
"""

from __future__ import annotations

import csv
import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgx.data.edit_csv import edit_csv_problems
from imgx.data.photos import crops_from_arrays, held_out_rng, square
from imgx.errors import DataError
from imgx.imageio import IMAGE_SUFFIXES, array_to_tensor, open_rgb

CSV_COLUMNS = ("image", "instruction", "input_caption", "output_caption", "target")
TARGET_RULE = "targets are centre-cropped and resized (LANCZOS) exactly like their inputs"


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive, by suffix), sorted; refuses a missing or empty folder."""
    root = Path(folder)
    if not root.exists():
        raise DataError(f"data.path {root}: no such folder")
    if not root.is_dir():
        raise DataError(f"data.path {root}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"data.path {root}: no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def held_out_split(names: list[str], where: str | Path) -> tuple[list[str], list[str]]:
    """Split ``names`` into ``(train, test)``, both sorted: about a fifth (at least one) held out for testing.

    Which names are held out depends on the names alone (the order of their SHA-256), never on the case seed or
    the training options: every case on the same folder is scored on the same images, and adding a file moves
    few others.
    """
    if len(names) < 2:
        raise DataError(f"{where}: a held-out test split needs at least 2 images, found {len(names)}")
    order = sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    n_test = max(1, math.ceil(len(names) / 5))
    return sorted(order[n_test:]), sorted(order[:n_test])


def _split(files: list[Path], root: str | Path) -> tuple[list[Path], list[Path]]:
    """:func:`held_out_split` of image files, named by their path inside ``root``."""
    by_name = {p.relative_to(root).as_posix(): p for p in files}
    train, test = held_out_split(list(by_name), root)
    return [by_name[n] for n in train], [by_name[n] for n in test]


def load(spec, seed: int, task: str) -> dict[str, Any]:
    """Load a folder of images for ``task`` (data loader contract in :mod:`imgx.data`)."""
    files = list_images(spec.path)
    if task == "edit":
        size = spec.image_size or 512
        files = files[: spec.count] if spec.count else files
        return {"images": [square(np.asarray(open_rgb(p)), size) for p in files], "names": [p.stem for p in files],
                "paths": [str(p) for p in files], "instructions": [None] * len(files),
                "input_captions": [None] * len(files), "output_captions": [None] * len(files),
                "targets": [None] * len(files),
                "info": {"source": str(spec.path), "images": len(files), "image_size": size}}
    train_files, test_files = _split(files, Path(spec.path))
    info = {"source": str(spec.path), "train_files": len(train_files), "test_files": len(test_files),
            "test_split": "fixed by the file names"}
    if task == "text-to-image":  # reference images for FID/KID: whole images, centre-cropped, RGB
        size = spec.image_size or 64

        def rgb(paths: list[Path]) -> torch.Tensor:
            return array_to_tensor(np.stack([np.asarray(square(np.asarray(open_rgb(p)), size)) for p in paths]))

        train, test = rgb(train_files), rgb(test_files)
        return {"train": train[: spec.train] if spec.train else train, "test": test[: spec.test] if spec.test else test,
                "info": {**info, "image_size": size}}
    if task == "colorize":
        size = spec.image_size or 32
        n_test = spec.test or 1024
        train = crops_from_arrays([np.asarray(open_rgb(p)) for p in train_files], spec.train or 8192, size,
                                  np.random.default_rng(seed))
        test_names = [p.relative_to(spec.path).as_posix() for p in test_files]
        test = crops_from_arrays([np.asarray(open_rgb(p)) for p in test_files], n_test, size,
                                 held_out_rng(spec, size, n_test, test_names))
        return {"train": array_to_tensor(train), "test": array_to_tensor(test), "info": {**info, "image_size": size}}
    size = spec.image_size or 28

    def gray(paths: list[Path]) -> torch.Tensor:
        arrays = [np.asarray(open_rgb(p).convert("L").resize((size, size)))[..., None] for p in paths]
        return array_to_tensor(np.stack(arrays))

    train, test = gray(train_files), gray(test_files)
    if spec.train:
        train = train[: spec.train]
    if spec.test:
        test = test[: spec.test]
    return {"train": train, "test": test, "train_labels": torch.zeros(len(train), dtype=torch.long),
            "test_labels": torch.zeros(len(test), dtype=torch.long), "info": {**info, "image_size": size}}


def load_edit_csv(spec, seed: int, task: str) -> dict[str, Any]:
    """Rows of ``image, instruction[, input_caption, output_caption]``; image paths are relative to the CSV."""
    path = Path(spec.path)
    if not path.is_file():
        raise DataError(f"data.path {path}: no such CSV file")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read as a UTF-8 CSV ({exc})") from None
    if not rows:
        raise DataError(f"{path}: no rows")
    missing = [c for c in CSV_COLUMNS[:2] if c not in rows[0]]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; columns are {', '.join(CSV_COLUMNS)} "
                        "(captions and target optional)")
    problems = edit_csv_problems(path, rows)
    if problems:
        raise DataError("; ".join(problems))
    rows = rows[: spec.count] if spec.count else rows
    size = spec.image_size or 512
    images, paths, targets, resized = [], [], [], 0
    for row in rows:
        image_path = (path.parent / row["image"].strip()).resolve()
        source = np.asarray(open_rgb(image_path))
        images.append(square(source, size))
        paths.append(str(image_path))
        target = (row.get("target") or "").strip()
        if target:
            target_array = np.asarray(open_rgb((path.parent / target).resolve()))
            resized += target_array.shape[:2] != source.shape[:2]
            targets.append(square(target_array, size))
        else:
            targets.append(None)

    def column(name: str) -> list[str | None]:
        return [(r.get(name) or "").strip() or None for r in rows]

    return {"images": images, "names": [Path(p).stem for p in paths], "paths": paths,
            "instructions": column("instruction"), "input_captions": column("input_caption"),
            "output_captions": column("output_caption"), "targets": targets,
            "info": {"source": str(path), "rows": len(rows), "image_size": size,
                     "targets": sum(t is not None for t in targets), "target_rule": TARGET_RULE,
                     "targets_resized_from_another_size": int(resized)}}

