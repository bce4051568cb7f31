"""What exists, read from the registries: formats, steps, generators and exports (nothing is listed here).

The CLI's help texts, its name checks and ``prefmill steps`` all come from these functions, so a new
format, step, generator or export shows up as soon as its module registers itself. Imports are
lazy: building the help of one command must not import torch for every other command.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from schemas.registry import Registry, UnknownName

# Importing these registers every step a stage runs (each pipeline imports the steps it wires).
_STAGE_MODULES = {
    "ingest": ("schemas.checks", "pipelines.ingest"),
    "curate": ("curation.steps", "curation.decontam_step", "curation.noise_step", "pipelines.curate"),
    "judge": ("pipelines.judge", "judges.generators"),
    "synthesize": ("pipelines.synthesize",),
}


@dataclass(frozen=True)
class Item:
    kind: str
    name: str
    summary: str
    stage: str = ""  # steps only: ingest, curate, judge, synthesize


def _summary(obj: Any) -> str:
    """First docstring line of ``obj``, else of its module (an adapter module describes its format)."""
    doc = getattr(obj, "__doc__", None) or getattr(sys.modules.get(getattr(obj, "__module__", "")), "__doc__", None)
    lines = (doc or "").strip().splitlines()
    return lines[0] if lines else ""


def _items(kind: str, registry: Registry | dict[str, Any]) -> list[Item]:
    if isinstance(registry, Registry):
        return [Item(kind, e.name, e.summary, str(e.extra.get("stage", ""))) for e in registry]
    return [Item(kind, name, _summary(obj)) for name, obj in registry.items()]


def formats() -> list[Item]:
    from schemas.adapters import ADAPTERS

    return _items("format", ADAPTERS)


def _registered_steps(stage: str | None) -> Registry:
    for name, modules in _STAGE_MODULES.items():
        if stage is None or stage == name:
            for module in modules:
                importlib.import_module(module)
    from schemas.registry import STEPS

    return STEPS


def steps(stage: str | None = None) -> list[Item]:
    return [i for i in _items("step", _registered_steps(stage)) if stage is None or i.stage == stage]


def curate_methods() -> list[str]:
    """``curate --method`` values: the methods of the registered ``select`` step, and ``none`` (dedup only)."""
    from curation.select import METHODS  # what curation.steps.SelectStep accepts

    return [*METHODS, "none"]


def generators() -> list[Item]:
    from judges.generators import GENERATORS

    return _items("generator", GENERATORS)


def exports() -> list[Item]:
    from warehouse.exports import EXPORTS

    return _items("export", EXPORTS)


def file_formats() -> tuple[str, ...]:
    from warehouse.exports.files import FILE_FORMATS

    return tuple(FILE_FORMATS)


BY_KIND: dict[str, Callable[[], list[Item]]] = {
    "format": formats,
    "step": steps,
    "generator": generators,
    "export": exports,
}


def everything(kind: str | None = None) -> list[Item]:
    """Every registered item, or those of one kind (an unknown kind is one UnknownName line)."""
    if kind is not None:
        return BY_KIND[check("kind", kind, list(BY_KIND))]()
    return [item for listing in BY_KIND.values() for item in listing()]


def names(items: Iterable[Item] | Iterable[str]) -> str:
    """``a | b | c``, for help texts."""
    return " | ".join(i if isinstance(i, str) else i.name for i in items)


def check(kind: str, name: str, known: list[str]) -> str:
    """``name`` when it is one of ``known``; else one UnknownName line listing them."""
    if name not in known:
        raise UnknownName(f"unknown {kind} {name!r}; known: {', '.join(known)}")
    return name
