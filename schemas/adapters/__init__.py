"""Format adapters: one raw source record → canonical rows (see base.py for the contract).

``get_adapter(name, mapping=None, **options)`` builds one by format name; an unknown name raises
``UnknownFormat`` (its message lists the known names), a bad mapping raises ``MappingError`` and a
bad option ``BadSettings`` (all ``PrefmillError`` and ``ValueError``) — each a one-line message the CLI prints as it is.
"""

from __future__ import annotations

import inspect
from typing import Any

from schemas.adapters.base import Adapter, AdaptError
from schemas.adapters.hh_rlhf import HHRLHFAdapter
from schemas.adapters.mapping import MappingAdapter
from schemas.adapters.mapping_spec import MappingError
from schemas.adapters.oasst import OasstAdapter
from schemas.adapters.pandalm import PandaLMAdapter
from schemas.adapters.ratings import RatingsAdapter
from schemas.adapters.sharegpt import ShareGPTAdapter
from schemas.adapters.trl import TRLAdapter
from schemas.errors import PrefmillError
from schemas.registry import BadSettings

ADAPTERS: dict[str, type] = {
    cls.name: cls
    for cls in (
        HHRLHFAdapter,
        TRLAdapter,
        ShareGPTAdapter,
        OasstAdapter,
        RatingsAdapter,
        PandaLMAdapter,
        MappingAdapter,
    )
}


class UnknownFormat(PrefmillError, ValueError):
    """A format name no adapter answers to."""


def get_adapter(name: str, mapping: str | dict | None = None, **options: Any) -> Adapter:
    cls = ADAPTERS.get(name)
    if cls is None:
        raise UnknownFormat(f"unknown format {name!r}; known formats: {', '.join(ADAPTERS)}")
    if name == MappingAdapter.name:
        options = {"mapping": mapping, **options}
    elif mapping is not None:
        raise MappingError(f"a mapping file only applies to format 'mapping', not {name!r}")
    params = inspect.signature(cls).parameters  # the constructor's parameters, without self
    unknown = sorted(set(options) - set(params) - {"self"})
    if unknown:
        takes = ", ".join(p for p in params if p != "self") or "no options"
        raise BadSettings(f"format {name!r} does not take option(s) {', '.join(unknown)}; it takes: {takes}")
    return cls(**options)


__all__ = ["ADAPTERS", "AdaptError", "Adapter", "MappingError", "UnknownFormat", "get_adapter"]
