"""What an export format is, and the registry that lists them.

A format is one module in this package: an ``ExportFormat`` subclass that turns canonical rows into the
columns a trainer reads, registered with the shapes it reads and its dataset-card tags::

    @EXPORTS.register("trl-kto", shapes=("binary",), tags=("kto", "binary-feedback"))
    class TrlKto(ExportFormat):
        '''TRL conversational KTO: prompt, completion, label.'''   # the summary in the CLI help

        converts_to = "binary"

        def build(self, sources):
            b = sources["binary"]
            return [part_from("kto", b, b.select(["prompt", "completion", "label"]))]

plus its import line in ``warehouse/exports/__init__.py``. ``warehouse.export.export`` does the rest (the
split, the files, the card): a format never writes a file itself (``extra_files`` returns their text).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from schemas.registry import Registry
from warehouse.exports.files import FILE_FORMATS

LINEAGE_COLUMNS = ["source_file", "format", "origin", "policy"]
LINEAGE = pa.schema([(c, pa.string()) for c in LINEAGE_COLUMNS])


@dataclass
class Part:
    """One set of trainer files (train/test) of an export; most formats have one, LLaMA-Factory two."""

    name: str
    rows: pa.Table  # what the trainer reads
    keys: list[str]  # split key per row
    order: list[str]  # record_id per row: the deterministic output order
    lineage: pa.Table  # LINEAGE_COLUMNS per row, for the card
    excluded: Counter = field(default_factory=Counter)  # rows left out, by reason


class ExportFormat:
    """A trainer layout. Subclasses implement ``build``; the class attributes say how it is written."""

    converts_to: ClassVar[str | None] = None  # the shape that include_converted rows join (None: no conversions)
    file_formats: ClassVar[tuple[str, ...]] = FILE_FORMATS
    file_pattern: ClassVar[str] = "{split}.{ext}"  # with {part}, {split} and {ext}

    def build(self, sources: dict[str, pa.Table]) -> list[Part]:
        """Parts from ``sources``: each registered shape's canonical columns plus ``__key`` (the split key)."""
        raise NotImplementedError

    def file_name(self, part: str, split: str, ext: str) -> str:
        return self.file_pattern.format(part=part, split=split, ext=ext)

    def extra_files(self, dataset: str, files: dict[tuple[str, str], str], parts: list[Part]) -> dict[str, str]:
        """Files written beside the data files, name → text; ``files`` maps (part, split) to the file written."""
        return {}


EXPORTS: Registry[type[ExportFormat]] = Registry("export format")


def part_from(name: str, src: pa.Table, rows: pa.Table, excluded: Counter | None = None) -> Part:
    """A part whose rows are ``src``'s rows one for one (keys, order and lineage come from ``src``)."""
    return Part(
        name,
        rows,
        src.column("__key").to_pylist(),
        src.column("record_id").to_pylist(),
        src.select(LINEAGE_COLUMNS),
        excluded or Counter(),
    )


def lineage_of(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([{c: r[c] for c in LINEAGE_COLUMNS} for r in rows], schema=LINEAGE)


def preferred_pairs(p: pa.Table) -> tuple[pa.Table, Counter]:
    """Ties are kept in the warehouse but never become chosen/rejected training pairs."""
    keep = pc.equal(p.column("label"), "chosen_better")
    n_keep = pc.sum(keep).as_py() or 0
    excluded = Counter({"tie": p.num_rows - n_keep}) if p.num_rows - n_keep else Counter()
    return p.filter(keep), excluded
