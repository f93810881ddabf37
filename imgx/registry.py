"""One registry class for every kind of named thing: models, data sets, metrics, tasks, schedulers.

Entries can be lazy (``"module:attr"``) so that listing and validating never import heavy backends.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from imgx.errors import ImgxError


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
