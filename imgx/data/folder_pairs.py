"""``folder-pairs``: a user's own image pairs, ``<path>/a/NAME.ext`` (input) and ``<path>/b/NAME.ext`` (target).

Files are paired by name without the suffix (``a/cat.png`` with ``b/cat.jpg``); every name must be on both
sides. :func:`pair_problems` checks that from the file names alone (no decoding), so ``imgx validate`` refuses
an unmatched folder before anything runs. About a fifth of the pairs (at least one) are held out for testing,
chosen by their names alone (:func:`imgx.data.folder.held_out_split`, never the case seed or the training
size); each image is centre-cropped to a square and resized to ``image_size`` (default 32).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from imgx.errors import DataError
from imgx.imageio import IMAGE_SUFFIXES

DEFAULT_SIZE = 32
SHOWN = 5  # unmatched names listed per side in a message


def _side(root: Path, side: str) -> dict[str, Path]:
    folder = root / side
    if not folder.is_dir():
        return {}
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return {p.stem: p for p in files}


def pair_problems(path: str | Path) -> list[str]:
    """What is wrong with a pair folder (missing ``a/`` or ``b/``, no images, unmatched names); empty if fine."""
    root = Path(path)
    if not root.is_dir():
        return [f"{root}: no such folder"]
    problems = []
    for side in ("a", "b"):
        if not (root / side).is_dir():
            problems.append(f"{root}: needs a sub-folder {side}/ (inputs in a/, targets in b/, paired by file name)")
    if problems:
        return problems
    a, b = _side(root, "a"), _side(root, "b")
    if not a or not b:
        return [f"{root}: {'a/' if not a else 'b/'} has no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"]
    for side, mine, other in (("a", a, b), ("b", b, a)):
        unmatched = [mine[k].name for k in sorted(set(mine) - set(other))]
        if unmatched:
            more = f" and {len(unmatched) - SHOWN} more" if len(unmatched) > SHOWN else ""
            problems.append(f"{root}: {len(unmatched)} file(s) in {side}/ have no namesake in "
                            f"{'b' if side == 'a' else 'a'}/: {', '.join(unmatched[:SHOWN])}{more}")
    if not problems and len(a) < 2:
        problems.append(f"{root}: a held-out test split needs at least 2 pairs, found {len(a)}")
    return problems


def load(spec, seed: int, task: str) -> dict[str, Any]:
    """Paired images for ``translate`` (contract as :func:`imgx.data.photo_pairs.load`, ``paired=True``)."""
    from imgx.data.folder import held_out_split
    from imgx.data.photos import square
    from imgx.imageio import array_to_tensor, open_rgb

    problems = pair_problems(spec.path)
    if problems:
        raise DataError("; ".join(problems))
    root = Path(spec.path)
    a, b = _side(root, "a"), _side(root, "b")
    train_names, test_names = held_out_split(sorted(a), root)
    size = spec.image_size or DEFAULT_SIZE

    def stack(side: dict[str, Path], names: list[str]):
        return array_to_tensor(np.stack([np.asarray(square(np.asarray(open_rgb(side[n])), size)) for n in names]))

    train_names = train_names[: spec.train] if spec.train else train_names
    test_names = test_names[: spec.test] if spec.test else test_names
    return {"train_a": stack(a, train_names), "train_b": stack(b, train_names), "test_a": stack(a, test_names),
            "test_b": stack(b, test_names), "paired": True,
            "info": {"source": str(root), "train_pairs": len(train_names), "test_pairs": len(test_names),
                     "image_size": size}}
