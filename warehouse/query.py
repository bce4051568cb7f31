"""Read-only SQL for users: only SELECT (and EXPLAIN of a SELECT) gets through.

Three layers: DuckDB's own parser classifies each statement; the catalog is opened read_only; and
the connection may only touch files under the lake, with its settings locked.
"""

from __future__ import annotations

import re

import duckdb
import pyarrow as pa

from warehouse.db import connect_read
from warehouse.errors import WarehouseError, one_line
from warehouse.layout import Layout

_EXPLAIN = re.compile(r"^\s*explain\s+(?:analy[sz]e\s+)?", re.IGNORECASE)


def _keyword(st: duckdb.Statement) -> str:
    words = st.query.split()
    return words[0].upper() if words else st.type.name


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    if not isinstance(sql, str) or not sql.strip():
        raise WarehouseError("empty query")
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise WarehouseError(one_line(e)) from None
    if not statements:
        raise WarehouseError("empty query")
    for st in statements:
        if st.type == duckdb.StatementType.EXPLAIN:
            # EXPLAIN ANALYZE runs its statement, so the explained statement must itself be a read.
            inner = _EXPLAIN.sub("", st.query, count=1)
            check_read_only(con, inner)
        elif st.type != duckdb.StatementType.SELECT:
            raise WarehouseError(f"read-only: {_keyword(st)} statements are refused")
    if len(statements) > 1:
        raise WarehouseError("one statement per query, please")


def run_query(layout: Layout, sql: str) -> pa.Table:
    con = connect_read(layout, sandbox=True)
    try:
        check_read_only(con, sql)
        try:
            return con.sql(sql).to_arrow_table()
        except duckdb.Error as e:
            raise WarehouseError(one_line(e)) from None
    finally:
        con.close()
