"""The one owner of image conversion: PIL / NumPy / tensors, value ranges, safe file names, pixel limits.

Conventions: tensors are ``(N, C, H, W)`` float in ``[-1, 1]`` unless named ``*_01`` (``[0, 1]``); arrays saved
to disk are ``(H, W, C)`` uint8.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from pathlib import Path

import numpy as np
from PIL import Image

from imgx.errors import DataError

MAX_PIXELS = 64_000_000  # larger images are refused as decompression bombs
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def open_rgb(path: str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an image file as RGB (grayscale, RGBA, palette and 16-bit are converted, not refused).

    Raises:
        DataError: for a missing, empty, truncated, corrupt or oversized file, naming it.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    if size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise DataError(f"{path}: {w}x{h} pixels is more than the limit of {max_pixels} "
                                "(refused as a possible decompression bomb)")
            img.load()
            return to_rgb(img)
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; alpha is composited on white, 16-bit is scaled, not clipped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def array_to_tensor(images: np.ndarray):
    """``(N, H, W, C)`` uint8 → ``(N, C, H, W)`` float32 tensor in ``[-1, 1]``."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return t.div_(127.5).sub_(1.0)


def arrays_to_unit(arrays: list[np.ndarray]):
    """Images ``(H, W, C)`` uint8 of one size → ``(N, C, H, W)`` float64 tensor in ``[0, 1]`` (for pixel metrics)."""
    import torch

    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).double().div(255.0)


def tensor_to_array(images) -> np.ndarray:
    """``(N, C, H, W)`` tensor in ``[-1, 1]`` → ``(N, H, W, C)`` uint8 (rounded, clipped; 1 channel kept)."""
    x = images.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().byte()
    return x.permute(0, 2, 3, 1).numpy()


def to_unit(images):
    """``[-1, 1]`` → ``[0, 1]`` (tensor in, tensor out)."""
    return images.add(1).div(2).clamp(0, 1)


def rgb_to_gray(images):
    """``(N, 3, H, W)`` → ``(N, 1, H, W)`` with the ITU-R 601 luma weights PIL's ``convert("L")`` uses."""
    weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def grid(rows: list[np.ndarray], pad: int = 2, scale: int = 1) -> np.ndarray:
    """Tile rows of images ``(N, H, W, C)`` uint8 (C 1 or 3) into one ``(H', W', 3)`` uint8 image."""
    rows = [np.repeat(r, 3, axis=-1) if r.shape[-1] == 1 else r for r in rows]
    n = max(len(r) for r in rows)
    h, w = rows[0].shape[1:3]
    out = np.full((len(rows) * (h + pad) + pad, n * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y:y + h, x:x + w] = img
    if scale > 1:
        out = out.repeat(scale, axis=0).repeat(scale, axis=1)
    return out


def slug(text: str, max_len: int = 40) -> str:
    """A lowercase ASCII slug of ``text`` (letters, digits, dashes), never empty, at most ``max_len`` chars."""
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()
    return text[:max_len].strip("-") or "x"


def safe_name(*parts: object, suffix: str = ".png") -> str:
    """A file name from user-given parts: slugs plus a short hash of the exact parts, so that distinct
    inputs never collide and no prompt becomes a path (``../`` and slashes cannot survive ``slug``)."""
    raw = "\x1f".join(str(p) for p in parts)
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    stem = "_".join(slug(p, 40) for p in parts)[:180]
    return f"{stem}_{digest}{suffix}"


def save_png(array: np.ndarray, folder: Path, name: str) -> Path:
    """Save ``(H, W, C)`` uint8 losslessly as ``folder/name``; refuses a name that would leave ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = (folder / name).resolve()
    if target.parent != folder.resolve() or len(name.encode()) > 255:
        raise ValueError(f"unsafe image file name {name!r}")
    arr = array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    from imgx.results import atomic_write_bytes

    atomic_write_bytes(target, buf.getvalue())
    return target
