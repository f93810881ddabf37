"""``outputs``: images made elsewhere (``task: score``), matched by file name to the folders they are judged against.

``path`` holds the outputs; ``target`` (what each output should be) and ``input`` (what the model was given) are
matched to them by file name without the suffix, relative to their folder (``out/cat.png`` with ``truth/cat.jpg``,
``out/a/b.png`` with ``truth/a/b.png``). ``reference`` is a folder of real images for FID/KID (no matching);
``prompts`` a CSV with columns ``file,prompt`` (``file`` with or without its suffix).

:func:`folder_problems` checks all of that from the file names alone (no decoding), so ``imgx validate`` and
``imgx score`` refuse an unmatched, ambiguous (``cat.png`` beside ``cat.jpg``) or foreign (``notes.txt``) file
before anything runs; decoding errors surface when the case loads the images (:func:`imgx.imageio.open_rgb`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgx.errors import DataError
from imgx.imageio import IMAGE_SUFFIXES

SHOWN = 5  # names listed per problem
FOLDERS = ("path", "target", "input", "reference")
PROMPT_COLUMNS = ("file", "prompt")


@dataclass
class ScoreFiles:
    """The matched files of a score case; ``targets`` and ``inputs`` are keyed like ``outputs``."""

    outputs: dict[str, Path]
    targets: dict[str, Path] | None
    inputs: dict[str, Path] | None
    reference: list[Path] | None
    prompts: dict[str, str] | None

    @property
    def names(self) -> list[str]:
        """The outputs' names (relative path without suffix), sorted."""
        return sorted(self.outputs)


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def index_folder(folder: str | Path, field: str) -> tuple[dict[str, Path], list[str]]:
    """``({name: file}, problems)`` for one folder: its images keyed by relative path without suffix.

    Hidden files (``.DS_Store``) are ignored; any other file that is not an image by its suffix, and two files
    that differ only in suffix, are problems.
    """
    root = Path(folder)
    if not root.exists():
        return {}, [f"{root}: no such folder"]
    if not root.is_dir():
        return {}, [f"{root}: not a folder"]
    files: dict[str, list[Path]] = {}
    foreign = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            foreign.append(str(p.relative_to(root)))
            continue
        files.setdefault(p.relative_to(root).with_suffix("").as_posix(), []).append(p)
    problems = []
    if foreign:
        problems.append(f"{root}: {len(foreign)} file(s) are not images ({', '.join(sorted(IMAGE_SUFFIXES))}): "
                        f"{_listed(foreign)}; move them out of the {field} folder")
    ambiguous = [" / ".join(p.name for p in ps) for ps in files.values() if len(ps) > 1]
    if ambiguous:
        problems.append(f"{root}: {len(ambiguous)} name(s) match more than one file (files are matched by name "
                        f"without the suffix): {_listed(ambiguous)}")
    if not files and not problems:
        problems.append(f"{root}: no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return {k: v[0] for k, v in files.items()}, problems


def _unmatched(outputs: dict[str, Any], other: dict[str, Any], what: str, where: str) -> list[str]:
    problems = []
    missing = sorted(set(outputs) - set(other))
    extra = sorted(set(other) - set(outputs))
    if missing:
        problems.append(f"{len(missing)} output(s) have no namesake in {what} {where}: {_listed(missing)}")
    if extra:
        problems.append(f"{len(extra)} name(s) in {what} {where} have no output: {_listed(extra)}")
    return problems


def read_prompts(path: str | Path) -> tuple[dict[str, str], list[str]]:
    """``({name without suffix: prompt}, problems)`` from a ``file,prompt`` CSV."""
    path = Path(path)
    if not path.is_file():
        return {}, [f"{path}: no such CSV file"]
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return {}, [f"{path}: cannot read as a UTF-8 CSV ({exc})"]
    if not rows or any(c not in rows[0] for c in PROMPT_COLUMNS):
        return {}, [f"{path}: needs the columns file,prompt and at least one row"]
    prompts: dict[str, str] = {}
    problems = []
    for i, row in enumerate(rows, start=2):
        name, prompt = (row.get("file") or "").strip(), (row.get("prompt") or "").strip()
        if not name or not prompt:
            problems.append(f"{path}:{i}: empty file or prompt")
            continue
        key = Path(name).with_suffix("").as_posix() if Path(name).suffix.lower() in IMAGE_SUFFIXES else name
        if key in prompts:
            problems.append(f"{path}:{i}: {name!r} has a prompt already")
        prompts[key] = prompt
    return prompts, problems


def match(spec) -> tuple[ScoreFiles, list[tuple[str, str]]]:
    """Index and match the folders of a ``data: outputs`` spec: ``(files, [(field, problem), ...])``."""
    problems: list[tuple[str, str]] = []
    if not spec.path:
        return ScoreFiles({}, None, None, None, None), [("path", "data set 'outputs' needs a path (the outputs)")]
    outputs, found = index_folder(spec.path, "outputs")
    problems += [("path", p) for p in found]
    sides: dict[str, dict[str, Path] | None] = {}
    for field in ("target", "input"):
        folder = getattr(spec, field)
        if not folder:
            sides[field] = None
            continue
        files, found = index_folder(folder, field)
        problems += [(field, p) for p in found]
        if outputs and files:
            problems += [(field, p) for p in _unmatched(outputs, files, f"the {field} folder", str(folder))]
        sides[field] = files
    reference = None
    if spec.reference:
        files, found = index_folder(spec.reference, "reference")
        problems += [("reference", p) for p in found]
        reference = [files[k] for k in sorted(files)]
    prompts = None
    if spec.prompts:
        prompts, found = read_prompts(spec.prompts)
        problems += [("prompts", p) for p in found]
        if outputs and prompts:
            problems += [("prompts", p) for p in _unmatched(outputs, prompts, "the prompts CSV", str(spec.prompts))]
    return ScoreFiles(outputs, sides["target"], sides["input"], reference, prompts), problems


def load(spec, seed: int, task: str) -> dict[str, Any]:
    """The matched files of a score case (images are decoded by the task, one at a time).

    Raises:
        DataError: every naming problem, in one message.
    """
    files, problems = match(spec)
    if problems:
        raise DataError("; ".join(f"data.{field}: {p}" for field, p in problems))
    info = {"outputs": str(spec.path), "images": len(files.outputs)}
    for field in ("target", "input", "reference", "prompts"):
        if getattr(spec, field):
            info[field] = str(getattr(spec, field))
    if files.reference is not None:
        info["reference_images"] = len(files.reference)
    return {"files": files, "info": info}
