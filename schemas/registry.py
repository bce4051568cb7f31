"""Registries: how a new format, step, generator or export becomes known by adding one file.

A ``Registry`` maps a name to an ``Entry`` (the class or factory, its config dataclass, a one-line
summary taken from the docstring, and what it needs and produces). Modules register themselves with
the ``register`` decorator when their package is imported; the CLI builds its help text and validates
names and settings from the registry, so nothing else lists them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from schemas.errors import PrefmillError

T = TypeVar("T")


class UnknownName(PrefmillError, ValueError):
    """A name no registry entry answers to (the message lists the known names)."""


class BadSettings(PrefmillError, ValueError):
    """Settings that the entry's config class does not take, or of the wrong type."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T  # the class or factory
    summary: str = ""
    config: type | None = None  # a dataclass of the entry's settings
    roles: tuple[str, ...] = ()  # e.g. a generator's engine roles (policy, judge, reference)
    shapes: tuple[str, ...] = ()  # canonical shapes it needs or produces
    tags: tuple[str, ...] = ()  # dataset-card tags
    extra: dict[str, Any] = field(default_factory=dict)

    def settings(self, overrides: dict[str, Any] | None = None) -> Any:
        """The entry's config with ``overrides``; an unknown key is one clear error."""
        if self.config is None:
            if overrides:
                raise BadSettings(f"{self.name} takes no settings, got {', '.join(sorted(overrides))}")
            return None
        known = {f.name for f in dataclasses.fields(self.config)}
        unknown = sorted(set(overrides or {}) - known)
        if unknown:
            raise BadSettings(f"unknown {self.name} setting(s) {unknown}; known: {', '.join(sorted(known))}")
        return self.config(**(overrides or {}))


class Registry(Generic[T]):
    """Name → entry, in registration order."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj, **meta)
            return obj

        return deco

    def add(self, name: str, obj: T, **meta: Any) -> Entry[T]:
        if name in self._entries and self._entries[name].obj is not obj:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
        meta.setdefault("summary", doc[0] if doc else "")
        entry: Entry[T] = Entry(name, obj, **meta)
        self._entries[name] = entry
        return entry

    def remove(self, name: str) -> None:
        """Forget an entry (tests that register a throw-away entry clean up with this)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownName(f"unknown {self.kind} {name!r}; known: {', '.join(self._entries) or 'none'}") from None

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(list(self._entries.values()))

    def help(self) -> str:
        """One line per entry, for CLI help texts."""
        return "; ".join(f"{e.name}: {e.summary}" if e.summary else e.name for e in self)


# Every step class registers here (name, config, shapes, tags; ``extra["stage"]`` says where it runs:
# "ingest", "curate", "judge", "synthesize"), so the CLI can list and validate them.
STEPS: Registry[type] = Registry("step")
