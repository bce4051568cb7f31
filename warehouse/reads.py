"""Reading versions back: rows of one shape, and listings of datasets, versions and runs."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from schemas.canonical import SCHEMAS, schema_for
from warehouse import versions
from warehouse.db import connect_read
from warehouse.errors import WarehouseError, one_line
from warehouse.layout import Layout, check_name
from warehouse.sql import lit_list


def canonical_first(table: pa.Table, shape: str) -> pa.Table:
    """Canonical columns with their canonical types first; derived extra columns after."""
    schema = schema_for(shape)
    cols = [table.column(f.name).cast(f.type) for f in schema]
    fields = list(schema)
    for name in table.column_names:
        if name not in schema.names:
            cols.append(table.column(name))
            fields.append(table.schema.field(name))
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


def read(layout: Layout, dataset: str, shape: str, version: str | None = None) -> pa.Table:
    if shape not in SCHEMAS:
        raise WarehouseError(f"unknown shape {shape!r}; expected one of {', '.join(SCHEMAS)}")
    check_name("dataset", dataset)
    con = connect_read(layout)
    try:
        vid = versions.resolve(con, dataset, version)
        files = [layout.abs(o.path) for o in versions.objects(con, vid, shape)]
        if not files:
            return schema_for(shape).empty_table()
        try:
            table = con.sql(f"SELECT * FROM read_parquet({lit_list(files)}, union_by_name = true)").to_arrow_table()
        except duckdb.Error as e:
            raise WarehouseError(f"reading {dataset}@{vid[:12]} {shape}: {one_line(e)}") from None
    finally:
        con.close()
    return canonical_first(table, shape)


def listing(layout: Layout, sql: str, params: list | None = None) -> pa.Table:
    con = connect_read(layout)
    try:
        return con.sql(sql, params=params or None).to_arrow_table()
    finally:
        con.close()


def resolve_version(layout: Layout, dataset: str, version: str | None) -> str:
    con = connect_read(layout)
    try:
        return versions.resolve(con, dataset, version)
    finally:
        con.close()
