"""The one transaction that makes a commit visible: version, files, lineage, run record, views.

Everything a commit changes in the catalog happens between BEGIN and COMMIT here. Lake objects are
written before it; if the process dies first they are orphans that no version references.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from schemas.canonical import SHAPES
from schemas.ids import digest
from schemas.step import as_removals
from warehouse import faults, runs
from warehouse.counts import RunCounts, StepCount
from warehouse.db import connect_write
from warehouse.errors import WarehouseError, one_line
from warehouse.lake import LakeObject
from warehouse.layout import Layout
from warehouse.sql import one
from warehouse.views import recreate_views

DUPLICATE_COLUMNS = ["run_id", "record_id", "source_file", "source_row", "duplicate_of_version", "shape"]


def version_id_for(dataset: str, objects: list[LakeObject]) -> str:
    """Content address of a version: its dataset and the set of objects it is made of."""
    return digest(b"version", dataset.encode(), *sorted(o.sha.encode() for o in objects))


@dataclass
class Publication:
    run_id: str
    dataset: str
    parent_version: str | None
    counts: RunCounts  # final counts (duplicates already moved out of kept)
    steps: list[StepCount]
    objects: list[LakeObject] | None  # every object of the new version, in order; None = no new version
    policies: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    duplicates: pa.Table | None = None  # DUPLICATE_COLUMNS
    removals: pa.Table | None = None  # schemas.step.REMOVAL_COLUMNS
    quarantine: tuple[str, int] | None = None  # (relative path, rows)

    @property
    def version_id(self) -> str | None:
        if self.objects is None:
            return None
        vid = version_id_for(self.dataset, self.objects)
        return None if vid == self.parent_version else vid


def _insert_version(con: duckdb.DuckDBPyConnection, pub: Publication, vid: str) -> None:
    if one(con, "SELECT 1 FROM meta.dataset_versions WHERE version_id = ?", [vid]):
        return  # identical content was published before (e.g. a curation undone): point back at it
    objects = pub.objects or []  # never empty here: a version id is the hash of its objects
    per_shape = {s: sum(o.rows for o in objects if o.shape == s) for s in SHAPES}
    con.execute(
        f"INSERT INTO meta.dataset_versions (version_id, dataset, parent_version, run_id, created_at, "
        f"{', '.join('rows_' + s for s in SHAPES)}, policies, extra) VALUES (?, ?, ?, ?, ?, "
        f"{', '.join('?' for _ in SHAPES)}, ?, ?)",
        [
            vid,
            pub.dataset,
            pub.parent_version,
            pub.run_id,
            runs.utcnow(),
            *per_shape.values(),
            runs.to_json(pub.policies or []),
            runs.to_json(pub.extra or {}),
        ],
    )
    con.executemany(
        "INSERT INTO meta.version_files VALUES (?, ?, ?, ?, ?)",
        [[vid, o.shape, o.path, o.rows, i] for i, o in enumerate(objects)],
    )


def _insert_lineage(con: duckdb.DuckDBPyConnection, pub: Publication, vid: str | None) -> None:
    if pub.duplicates is not None and pub.duplicates.num_rows:
        con.register("_dups", pub.duplicates.select(DUPLICATE_COLUMNS))
        con.execute("INSERT INTO meta.duplicates SELECT * FROM _dups")
        con.unregister("_dups")
    if pub.removals is not None and pub.removals.num_rows:
        con.register("_removals", as_removals(pub.removals))
        con.execute(
            "INSERT INTO meta.removals SELECT ?, ?, ?, record_id, step, reason, duplicate_of, detail FROM _removals",
            [pub.run_id, pub.dataset, vid or pub.parent_version],
        )
        con.unregister("_removals")
    if pub.quarantine is not None:
        path, rows = pub.quarantine
        con.execute(
            "INSERT OR REPLACE INTO meta.quarantine_files VALUES (?, ?, ?, ?)", [pub.run_id, pub.dataset, path, rows]
        )


def publish(layout: Layout, pub: Publication) -> str:
    """Apply the publication in one transaction; returns the run's final status."""
    pub.counts.check(f"run {pub.run_id}")
    vid = pub.version_id
    status = runs.COMMITTED if vid else runs.NO_CHANGE
    c = pub.counts
    con = connect_write(layout)
    try:
        con.execute("BEGIN")
        if vid:
            _insert_version(con, pub, vid)
            now = runs.utcnow()
            con.execute(
                "INSERT INTO meta.datasets VALUES (?, ?, ?, ?) ON CONFLICT (dataset) DO UPDATE "
                "SET latest_version = EXCLUDED.latest_version, updated_at = EXCLUDED.updated_at",
                [pub.dataset, now, now, vid],
            )
        _insert_lineage(con, pub, vid)
        runs.record_steps(con, pub.run_id, pub.steps)
        con.execute(
            "UPDATE meta.runs SET status = ?, finished_at = ?, records_read = ?, rows_read = ?, rows_kept = ?, "
            "rows_rejected = ?, rows_duplicate = ?, version_id = ?, parent_version = ?, error = NULL "
            "WHERE run_id = ?",
            [
                status,
                runs.utcnow(),
                c.records_read,
                c.rows_read,
                c.rows_kept,
                c.rows_rejected,
                c.rows_duplicate,
                vid,
                pub.parent_version,
                pub.run_id,
            ],
        )
        recreate_views(con, layout)
        faults.reached(faults.IN_TRANSACTION)
        con.execute("COMMIT")
    except duckdb.Error as e:
        _rollback(con)
        raise WarehouseError(f"commit of run {pub.run_id} failed, nothing was published: {one_line(e)}") from None
    except BaseException:
        _rollback(con)
        raise
    finally:
        con.close()
    return status


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass  # the transaction is already gone; closing the connection discards it anyway
