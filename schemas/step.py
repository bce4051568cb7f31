"""The step contract: a step maps an Arrow batch to kept rows and rejected rows with reasons.

Steps live in schemas/, curation/ and judges/ as plain functions or small classes so they are
unit-testable without Beam or Prefect; pipelines/ only wires them into graphs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import pyarrow as pa

from schemas.canonical import QUARANTINE, RAW_LIMIT


@dataclass
class Reject:
    """One rejected record: a machine-readable reason plus what is needed to find it again."""

    step: str
    reason: str
    detail: str = ""
    source_file: str | None = None
    source_row: int | None = None
    shape: str | None = None
    record_id: str | None = None
    raw: Any = None  # str, bytes or a JSON-able object

    def to_row(self, run_id: str) -> dict:
        return {
            "run_id": run_id,
            "step": self.step,
            "reason": self.reason,
            "detail": self.detail[:2000] if self.detail else self.detail,
            "source_file": self.source_file,
            "source_row": self.source_row,
            "shape": self.shape,
            "record_id": self.record_id,
            "raw": raw_text(self.raw),
        }


def raw_text(raw: Any) -> str | None:
    """Raw record as text, capped at RAW_LIMIT characters (marked when cut)."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        text = raw[: RAW_LIMIT + 1].decode("utf-8", "replace")
    elif isinstance(raw, str):
        text = raw
    else:
        try:
            text = orjson.dumps(raw, default=str).decode()
        except (TypeError, orjson.JSONEncodeError):
            text = repr(raw)
    if len(text) > RAW_LIMIT:
        return text[:RAW_LIMIT] + f"…[truncated, {len(text)} chars]"
    return text


def rejects_table(rejects: list[Reject], run_id: str) -> pa.Table:
    return pa.Table.from_pylist([r.to_row(run_id) for r in rejects], schema=QUARANTINE)


@dataclass
class StepResult:
    kept: pa.Table
    rejected: list[Reject] = field(default_factory=list)


class Step(Protocol):
    """A batch step. ``setup`` loads heavy things once per worker; ``process`` is pure per batch."""

    name: str

    def setup(self) -> None: ...

    def process(self, batch: pa.Table) -> StepResult: ...
