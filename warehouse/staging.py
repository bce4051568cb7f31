"""The staging area pipelines write into: ``staging/<run_id>/<shape>/*.parquet`` and ``.../quarantine/``."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.canonical import QUARANTINE, SCHEMAS
from warehouse.errors import WarehouseError, one_line
from warehouse.layout import Layout
from warehouse.schemacheck import schema_problems


def check_shards(paths: list[Path], expected: pa.Schema, what: str) -> None:
    for p in paths:
        try:
            schema = pq.read_schema(p)
        except Exception as e:
            raise WarehouseError(f"staged {what} shard {p} is not readable Parquet: {one_line(e)}") from None
        problems = schema_problems(schema, expected, allow_extra=False)
        if problems:
            raise WarehouseError(f"staged {what} shard {p}: " + "; ".join(problems))


def staged_shards(layout: Layout, run_id: str) -> tuple[dict[str, list[Path]], list[Path]]:
    """(shape → shards, quarantine shards), sorted by name: shard order is the run's row order."""
    root = layout.staging(run_id)
    shapes: dict[str, list[Path]] = {}
    quarantine: list[Path] = []
    if not root.exists():
        return shapes, quarantine
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        # Dot/underscore files are writers' temporaries and markers (the Hadoop/Beam convention).
        files = sorted(f for f in d.glob("*.parquet") if not f.name.startswith((".", "_")))
        if d.name == "quarantine":
            quarantine = files
        elif d.name in SCHEMAS:
            if files:
                shapes[d.name] = files
        else:
            raise WarehouseError(f"unknown staging folder {d} (expected a shape in {sorted(SCHEMAS)} or 'quarantine')")
    for shape, files in shapes.items():
        check_shards(files, SCHEMAS[shape], shape)
    check_shards(quarantine, QUARANTINE, "quarantine")
    return shapes, quarantine
