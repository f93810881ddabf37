"""One registry class for every kind of named thing: models, data sets, metrics, tasks, schedulers.

Entries can be lazy (``"module:attr"``) so that listing and validating never import heavy backends. A registry can
also take names from an entry-point group of other installed packages (``imgx.models``) and resolve an import path
(``"pkg.module:attr"``) that names no entry at all: :meth:`Registry.resolve`.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from imgx.errors import ImgxError

log = logging.getLogger("imgx")
# ``pkg.module:attr`` (attr may be dotted): a name that is an import path rather than a registered name.
IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def is_import_path(name: object) -> bool:
    """Whether ``name`` has the shape ``pkg.module:attr`` (nothing is imported)."""
    return isinstance(name, str) and bool(IMPORT_PATH.match(name))


class ImportProblem(ImgxError):
    """A ``module:attr`` that cannot be imported or has no such attribute; the message names both."""


def import_object(path: str) -> Any:
    """Import ``"pkg.module:attr"`` and return the attribute, or raise :class:`ImportProblem` saying why."""
    module, _, attr = path.partition(":")
    try:
        obj = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any error while importing user code is the user's to fix
        raise ImportProblem(f"cannot import module {module!r}: {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportProblem(f"module {module!r} has no attribute {attr!r}") from None
    return obj


class UnknownName(ImgxError, KeyError):
    """A name that is not registered; the message suggests the nearest registered one."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


@dataclass
class Entry:
    """A registered name: its target (object or lazy ``"module:attr"``), a one-line help and metadata."""

    name: str
    target: Any
    help: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        """Return the registered object, importing it first if the entry is lazy."""
        if isinstance(self.target, str) and ":" in self.target:
            if self.meta.get("plugin"):  # another package's code: say what failed, never a bare traceback
                self.target = import_object(self.target)
            else:
                module, _, attr = self.target.partition(":")
                obj = importlib.import_module(module)
                for part in attr.split("."):
                    obj = getattr(obj, part)
                self.target = obj
        return self.target


class Registry:
    """Names of one kind. A duplicate name is an error; an unknown one suggests the nearest."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, target: Any = None, *, help: str = "", **meta: Any):
        """Register ``target`` under ``name``; without a target, return a decorator."""
        if target is None:
            def decorator(obj):
                self.register(name, obj, help=help or (obj.__doc__ or "").strip().split("\n")[0], **meta)
                return obj
            return decorator
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = Entry(name, target, help, dict(meta))
        return target

    def unregister(self, name: str) -> None:
        """Remove a name (for tests and plugins that register temporarily)."""
        self._entries.pop(name, None)

    def add_entry_points(self, group: str, **meta: Any) -> None:
        """Register (lazily, nothing imported) every entry point of ``group`` that installed packages declare.

        A name that is already registered (a built-in, or another package's) is skipped with a warning.
        """
        try:
            points = importlib.metadata.entry_points(group=group)
        except Exception as exc:  # noqa: BLE001 - broken metadata of one package must not break imgx
            log.warning("cannot read entry points %s: %s", group, exc)
            return
        for ep in sorted(points, key=lambda e: e.name):
            dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
            if ep.name in self._entries:
                log.warning("%s %r from %s ignored: the name is already registered", self.kind, ep.name, dist)
                continue
            self.register(ep.name, ep.value, help=f"{ep.value} (entry point {group!r} of {dist})", plugin=dist,
                          **meta)

    def resolve(self, name: str) -> Any:
        """The object a name stands for: a registered entry, or an import path ``"pkg.module:attr"``.

        Raises:
            UnknownName: neither registered nor an import path (with a suggestion).
            ImportProblem: the module does not import or lacks the attribute.
        """
        if name not in self._entries and is_import_path(name):
            return import_object(name)
        return self.get(name)

    def suggest(self, name: str) -> str:
        """The message for an unknown name: the kind, the name and the nearest registered name if any."""
        close = difflib.get_close_matches(str(name), list(self._entries), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(self._entries))}"
        return f"unknown {self.kind} {name!r}{hint}"

    def entry(self, name: str) -> Entry:
        """The entry for ``name``, or :class:`UnknownName` with a suggestion."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownName(self.suggest(name)) from None

    def get(self, name: str) -> Any:
        """The registered object for ``name`` (importing lazy entries)."""
        return self.entry(name).load()

    def meta(self, name: str) -> dict[str, Any]:
        """The metadata registered with ``name``, without importing it."""
        return self.entry(name).meta

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def entries(self) -> list[Entry]:
        """All entries, sorted by name."""
        return [self._entries[n] for n in sorted(self._entries)]
