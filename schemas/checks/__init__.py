"""Row checks that run on every ingest after validation; each module registers its step in STEPS.

A new check is one module here plus its import below (the registration line). A check is a STEPS
entry with ``extra={"stage": "ingest", "default": bool}``; ``default`` says whether ingest runs it
unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.checks import special_tokens  # noqa: F401  (registers the step)
from schemas.registry import STEPS, Entry, UnknownName
from schemas.step import Step


def _checks() -> list[Entry[type]]:
    return [e for e in STEPS if e.extra.get("stage") == "ingest" and "default" in e.extra]


def default_checks() -> list[Step]:
    return [e.obj() for e in _checks() if e.extra["default"]]


def build_checks(names: Sequence[str] | None) -> list[Step]:
    """The named ingest checks (None: the default ones; an empty list: none)."""
    if names is None:
        return default_checks()
    known = {e.name: e for e in _checks()}
    missing = [n for n in names if n not in known]
    if missing:
        raise UnknownName(f"unknown ingest check {missing[0]!r}; known: {', '.join(known) or 'none'}")
    return [known[n].obj() for n in names]
