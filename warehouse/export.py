"""export(): one dataset version → trainer files + a deterministic train/test split + a dataset card.

The formats are the entries of ``warehouse.exports.EXPORTS`` (one module each); this module does what
every format shares: read the shapes the entry names, add converted rows on request, split by key,
write the files in the requested file format, and render the card with the entry's tags.
Rankings/ratings can be turned into pairs on the way out (``include_converted``), using the named
policies of ``schemas.conversions``; the card records which.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from schemas.canonical import SCHEMAS
from schemas.registry import Entry, UnknownName
from warehouse.errors import UnknownExportFormat, WarehouseError
from warehouse.exports import EXPORTS, ExportFormat, Part, card, split
from warehouse.exports.files import write_rows, write_text

if TYPE_CHECKING:
    from warehouse.core import Warehouse

# include_converted keys → source shape (the CLI says rankings/ratings; shape names work too).
SOURCE_ALIASES = {
    "rankings": "listwise",
    "listwise": "listwise",
    "ratings": "ratings",
    "pairs": "pairwise",
    "pairwise": "pairwise",
}


@dataclass
class ExportResult:
    paths: list[Path]
    counts: dict[str, Any]
    version_id: str


def export_format(name: str) -> Entry[type[ExportFormat]]:
    """The registry entry of export format ``name``; an unknown name is one line listing the known ones."""
    try:
        return EXPORTS.get(name)
    except UnknownName as e:
        raise UnknownExportFormat(str(e)) from None


def _keyed(table: pa.Table, shape: str, split_key: str) -> pa.Table:
    """Canonical columns + ``__key`` (the split key as text)."""
    keys = split.key_values(table, split_key)
    return table.select(SCHEMAS[shape].names).append_column("__key", pa.array(keys, pa.string()))


def _convert(
    wh: Warehouse, dataset: str, vid: str, name: str, args: Any, target: str | None, split_key: str, fmt: str
) -> tuple[str, pa.Table]:
    """(the shape the rows join, ``name``'s rows converted to it, keyed)."""
    src = SOURCE_ALIASES.get(name)
    if src is None:
        raise WarehouseError(f"include_converted: unknown source {name!r}; use rankings or ratings")
    if target is None or src == target:
        raise WarehouseError(f"include_converted: {fmt} cannot use converted {name}")
    if args is not None and not isinstance(args, dict):
        raise WarehouseError(f"include_converted[{name!r}] must be a dict of policy arguments")
    from schemas.conversions import convert_table  # schemas layer; loaded only when asked for

    source = wh.read(dataset, src, vid)
    try:
        out = convert_table(source, src, target, **(args or {}))
    except (ValueError, TypeError, KeyError) as e:
        raise WarehouseError(f"converting {name} to {target}: {e}") from None
    if split_key in out.column_names:
        return target, _keyed(out, target, split_key)
    # Keys such as prompt_cluster live on the source rows: carry them over by prompt.
    by_prompt: dict[str, str] = {}
    for pid, key in zip(source.column("prompt_id").to_pylist(), split.key_values(source, split_key)):
        if by_prompt.setdefault(pid, key) != key:
            raise WarehouseError(
                f"split key {split_key!r} differs between rows of one prompt; it cannot be carried to converted {name}"
            )
    keys = [by_prompt[p] for p in out.column("prompt_id").to_pylist()]
    return target, out.select(SCHEMAS[target].names).append_column("__key", pa.array(keys, pa.string()))


def _ordered(part: Part, mask: list[bool], want_test: bool) -> pa.Table:
    idx = [i for i, m in enumerate(mask) if m == want_test]
    idx.sort(key=lambda i: (part.order[i], i))
    return part.rows.take(pa.array(idx, pa.int64()))


@dataclass
class _Plan:
    """What will be written: the built parts and everything the card needs to say about them."""

    dataset: str
    entry: Entry[type[ExportFormat]]
    impl: ExportFormat  # the format's instance
    version_id: str
    parts: list[Part]
    excluded: Counter
    converted: Counter
    params: dict[str, Any]


def _plan(
    wh: Warehouse,
    dataset: str,
    entry: Entry[type[ExportFormat]],
    version: str | None,
    split_key: str,
    include_converted: dict | None,
    params: dict[str, Any],
) -> _Plan:
    vid = wh.resolve_version(dataset, version)
    impl = entry.obj()
    sources = {shape: _keyed(wh.read(dataset, shape, vid), shape, split_key) for shape in entry.shapes}
    converted: Counter = Counter()
    for name, args in sorted((include_converted or {}).items()):
        target, extra = _convert(wh, dataset, vid, name, args, impl.converts_to, split_key, entry.name)
        converted.update(extra.column("policy").to_pylist())
        known = pc.is_in(extra.column("record_id"), value_set=sources[target].column("record_id"))
        sources[target] = pa.concat_tables([sources[target], extra.filter(pc.invert(known))])
    built = impl.build(sources)
    parts = [p for p in built if p.rows.num_rows]
    if not parts:
        raise WarehouseError(f"nothing to export: {dataset}@{vid[:12]} has no rows usable as {entry.name}")
    excluded = sum((p.excluded for p in built), Counter())
    return _Plan(dataset, entry, impl, vid, parts, excluded, converted, {**params, "version": vid})


def _write(wh: Warehouse, plan: _Plan, out: Path) -> ExportResult:
    p = plan.params
    files: dict[tuple[str, str], str] = {}
    split_counts: dict[str, dict[str, int]] = {}
    paths: list[Path] = []
    for part in plan.parts:
        mask = split.test_mask(part.keys, p["test_fraction"], p["seed"])
        split_counts[part.name] = {}
        for split_name, want_test in (("train", False), ("test", True)):
            rows = _ordered(part, mask, want_test)
            split_counts[part.name][split_name] = rows.num_rows
            if rows.num_rows == 0:
                continue  # an empty JSON file cannot be loaded by `datasets`; the card says so
            name = plan.impl.file_name(part.name, split_name, p["file_format"])
            write_rows(rows, out / name, p["file_format"])
            files[(part.name, split_name)] = name
            paths.append(out / name)
    for name, text in plan.impl.extra_files(plan.dataset, files, plan.parts).items():
        write_text(text, out / name)
        paths.append(out / name)
    history = wh.versions(plan.dataset)
    vrow = history.filter(pc.equal(history.column("version_id"), plan.version_id)).to_pylist()[0]
    text = card.render(
        dataset=plan.dataset,
        fmt=plan.entry.name,
        tags=plan.entry.tags,
        version={**vrow, "created_at": str(vrow["created_at"])},
        files=files,
        split_counts=split_counts,
        lineage=[part.lineage for part in plan.parts],
        excluded=dict(plan.excluded),
        converted=dict(plan.converted),
        params=p,
    )
    write_text(text, out / "README.md")
    paths.append(out / "README.md")
    totals = {s: sum(c[s] for c in split_counts.values()) for s in ("train", "test")}
    counts = {**totals, "parts": split_counts, "excluded": dict(plan.excluded), "converted": dict(plan.converted)}
    return ExportResult(paths, counts, plan.version_id)


def export(
    wh: Warehouse,
    dataset: str,
    fmt: str,
    out_dir: str | os.PathLike,
    version: str | None = None,
    file_format: str = "jsonl",
    test_fraction: float = 0.1,
    seed: int = 0,
    split_key: str = "prompt_id",
    include_converted: dict | None = None,
) -> ExportResult:
    entry = export_format(fmt)
    writes = entry.obj.file_formats
    if file_format not in writes:
        raise WarehouseError(f"unknown file format {file_format!r}; {fmt} writes {' or '.join(writes)}")
    if not 0.0 <= float(test_fraction) < 1.0:
        raise WarehouseError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if include_converted is not None and not isinstance(include_converted, dict):
        raise WarehouseError("include_converted must be a dict such as {'rankings': {'policy': 'adjacent'}}")
    params = {
        "format": fmt,
        "file_format": file_format,
        "test_fraction": float(test_fraction),
        "seed": int(seed),
        "split_key": split_key,
        "include_converted": include_converted or {},
    }
    plan = _plan(wh, dataset, entry, version, split_key, include_converted, params)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        return _write(wh, plan, out)
    except OSError as e:
        raise WarehouseError(f"cannot write the export to {out}: {e.strerror or e}") from None
