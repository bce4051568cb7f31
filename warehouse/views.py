"""The public SQL surface: views over the lake (literal file lists) and over the catalog tables.

Views are rebuilt inside every commit's transaction, so a reader sees either the old set of files
or the new one, never a mix. File lists are literal because DuckDB table functions take constants.
"""

from __future__ import annotations

from collections import defaultdict

import duckdb

from schemas.canonical import SHAPES
from warehouse.artifacts import VIEWS as ARTIFACT_VIEWS
from warehouse.audits import VIEWS as AUDIT_VIEWS
from warehouse.layout import Layout
from warehouse.sql import lit, lit_list

# Public names of the per-shape views (stable: documented for users).
SHAPE_VIEWS = {"pairwise": "pairs", "binary": "binary_feedback", "listwise": "rankings", "ratings": "ratings"}

QUARANTINE_COLUMNS = "run_id, step, reason, detail, source_file, source_row, shape, record_id, raw"

# ``ai_labels``: the gate decisions (flows.audit: which audit let a judge's labels in, or the override)
# of every run that made this version or one of its ancestors, nearest first, as a JSON array (NULL: none).
# The card of an export shows them, so a curated child of a judged version still names its judge.
_AI_LABELS = """WITH RECURSIVE lineage(version_id, ancestor, depth) AS (
    SELECT version_id, version_id, 0 FROM meta.dataset_versions
    UNION ALL
    SELECT l.version_id, p.parent_version, l.depth + 1 FROM lineage l
    JOIN meta.dataset_versions p ON p.version_id = l.ancestor
    WHERE p.parent_version IS NOT NULL AND l.depth < 100000
), labels AS (
    SELECT l.version_id, to_json(list(json_extract(r.metrics, '$.gate') ORDER BY l.depth))::VARCHAR AS ai_labels
    FROM lineage l JOIN meta.dataset_versions a ON a.version_id = l.ancestor JOIN meta.runs r ON r.run_id = a.run_id
    WHERE json_extract(r.metrics, '$.gate') IS NOT NULL GROUP BY l.version_id
)
"""

TABLE_VIEWS = {
    "runs": "SELECT * FROM meta.runs",
    "run_steps": "SELECT run_id, step, rows_in, rows_kept, rows_rejected, rows_duplicate, position FROM meta.run_steps",
    "datasets": (
        "SELECT d.dataset, d.latest_version, d.created_at, d.updated_at, "
        + ", ".join(f"v.rows_{s}" for s in SHAPES)
        + " FROM meta.datasets d JOIN meta.dataset_versions v ON v.version_id = d.latest_version"
    ),
    "dataset_versions": (
        _AI_LABELS + "SELECT v.*, (d.latest_version = v.version_id) AS is_latest, g.ai_labels "
        "FROM meta.dataset_versions v JOIN meta.datasets d USING (dataset) LEFT JOIN labels g USING (version_id)"
    ),
    "removals": "SELECT * FROM meta.removals",
    "duplicates": "SELECT * FROM meta.duplicates",
    **ARTIFACT_VIEWS,
    **AUDIT_VIEWS,
}


def _shape_view_sql(layout: Layout, shape: str, groups: dict[tuple[str, str], list[str]]) -> str:
    # The empty typed file comes first so the canonical columns lead, and the view binds with no data.
    parts = [
        f"SELECT *, NULL::VARCHAR AS dataset, NULL::VARCHAR AS version_id "
        f"FROM read_parquet({lit(layout.empty_file(shape))})"
    ]
    for (dataset, version_id), rels in sorted(groups.items()):
        files = lit_list([str(layout.abs(r)) for r in rels])
        parts.append(
            f"SELECT *, {lit(dataset)} AS dataset, {lit(version_id)} AS version_id "
            f"FROM read_parquet({files}, union_by_name = true)"
        )
    return "\nUNION ALL BY NAME\n".join(parts)


def _all_versions_sql(layout: Layout, shape: str, paths: list[str]) -> str:
    """Every version of every dataset: each object is listed once and mapped to its versions by
    joining on the catalog, so the view text grows with the objects, not objects x versions."""
    files = lit_list([str(layout.empty_file(shape))] + [str(layout.abs(p)) for p in paths])
    prefix = len(str(layout.root)) + 2  # filename is absolute; version_files.path is root-relative
    return (
        f"SELECT d.* EXCLUDE (filename), v.dataset, f.version_id "
        f"FROM read_parquet({files}, union_by_name = true, filename = true) d "
        f"JOIN meta.version_files f ON f.path = substr(d.filename, {prefix}) "
        f"JOIN meta.dataset_versions v ON v.version_id = f.version_id"
    )


def _groups(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, dict[tuple[str, str], list[str]]]:
    out: dict[str, dict[tuple[str, str], list[str]]] = {s: defaultdict(list) for s in SHAPES}
    for dataset, version_id, shape, path in con.execute(sql).fetchall():
        out[shape][(dataset, version_id)].append(path)
    return out


def recreate_views(con: duckdb.DuckDBPyConnection, layout: Layout) -> None:
    """(Re)create every public view from the catalog state visible to ``con`` (call inside the transaction)."""
    latest = _groups(
        con,
        "SELECT d.dataset, d.latest_version, f.shape, f.path FROM meta.datasets d "
        "JOIN meta.version_files f ON f.version_id = d.latest_version ORDER BY f.seq",
    )
    objects: dict[str, list[str]] = {s: [] for s in SHAPES}
    for shape, path in con.execute(
        "SELECT shape, path FROM meta.version_files GROUP BY shape, path ORDER BY min(seq), path"
    ).fetchall():
        objects[shape].append(path)
    for shape, name in SHAPE_VIEWS.items():
        con.execute(f"CREATE OR REPLACE VIEW main.{name} AS {_shape_view_sql(layout, shape, latest[shape])}")
        con.execute(
            f"CREATE OR REPLACE VIEW main.{name}_all_versions AS {_all_versions_sql(layout, shape, objects[shape])}"
        )
    qfiles = [
        str(layout.abs(p)) for (p,) in con.execute("SELECT path FROM meta.quarantine_files ORDER BY path").fetchall()
    ]
    qfiles.insert(0, str(layout.empty_file("quarantine")))
    con.execute(
        f"CREATE OR REPLACE VIEW main.quarantine AS SELECT {', '.join('q.' + c for c in QUARANTINE_COLUMNS.split(', '))}, "
        f"r.dataset FROM read_parquet({lit_list(qfiles)}, union_by_name = true) q "
        "LEFT JOIN meta.runs r USING (run_id)"
    )
    for name, sql in TABLE_VIEWS.items():
        con.execute(f"CREATE OR REPLACE VIEW main.{name} AS {sql}")
