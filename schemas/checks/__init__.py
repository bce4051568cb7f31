"""Row checks that run on every ingest after validation; each module registers its step in STEPS.

A new check is one module here plus its import below (the registration line). ``default_checks()``
builds the ones registered with ``extra={"stage": "ingest", "default": True}``.
"""

from __future__ import annotations

from schemas.checks import special_tokens  # noqa: F401  (registers the step)
from schemas.registry import STEPS
from schemas.step import Step


def default_checks() -> list[Step]:
    return [e.obj() for e in STEPS if e.extra.get("stage") == "ingest" and e.extra.get("default")]
