"""Content digests of the files a case reads, cached by path, size, modification time and inode.

A case key must change when the content of a file the case reads changes, but hashing every image and weight
file on every resume would make a resume slow. Each file's SHA-256 is therefore kept in
``<cache>/file-digests.json`` beside the size, mtime and inode it was computed for, and recomputed only when
one of them changes (an edit that keeps all three is not seen: the usual make/rsync trade-off).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

CACHE_NAME = "file-digests.json"
_cache: dict[str, list[Any]] | None = None
_dirty = False


def _cache_path() -> Path:
    from imgx.env import default_cache_dir

    return default_cache_dir() / CACHE_NAME


def _read_cache() -> dict[str, list[Any]]:
    try:
        data = json.loads(_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _entries() -> dict[str, list[Any]]:
    global _cache
    if _cache is None:
        _cache = _read_cache()
    return _cache


def file_digest(path: str | Path) -> str:
    """The SHA-256 of a file's content (hex), from the cache while its size, mtime and inode are unchanged."""
    global _dirty
    where = os.path.abspath(path)
    try:
        st = os.stat(where)
    except OSError:
        return "missing"
    stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
    entry = _entries().get(where)
    if isinstance(entry, list) and len(entry) == 4 and entry[:3] == stamp:
        return str(entry[3])
    h = hashlib.sha256()
    try:
        with open(where, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return f"unreadable:{st.st_size}:{st.st_mtime_ns}"  # the loader names the problem when the case runs
    _entries()[where] = [*stamp, h.hexdigest()]
    _dirty = True
    return h.hexdigest()


def tree_digest(path: str | Path) -> str:
    """A file's digest, or a folder's: every file under it (relative name and content), sorted; ``missing``."""
    root = Path(path)
    if root.is_file():
        return file_digest(root)
    if not root.is_dir():
        return "missing"
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            h.update(f"{os.path.relpath(full, root)}\0{file_digest(full)}\n".encode())
    return h.hexdigest()


def flush() -> None:
    """Write new digests to the cache file (merged with what other processes wrote meanwhile), atomically."""
    global _dirty
    if not _dirty or _cache is None:
        return
    from imgx.results import atomic_write_json

    merged = {**_read_cache(), **_cache}
    try:
        atomic_write_json(_cache_path(), merged)
    except OSError:
        return  # a read-only cache only costs re-hashing next time
    _dirty = False
