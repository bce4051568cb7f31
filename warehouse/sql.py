"""SQL text helpers for the few places where values must be literals (table function arguments, DDL)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import duckdb


def lit(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def lit_list(values: Iterable[object]) -> str:
    return "[" + ", ".join(lit(v) for v in values) + "]"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def one(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple[Any, ...] | None:
    """First row or None. Results are always drained: DuckDB 2 refuses new work on a connection
    whose previous result was not fetched to the end."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def value(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> Any:
    """The first column of the first row of a query that always returns a row (an aggregate, a row known to exist)."""
    row = one(con, sql, params)
    if row is None:
        raise LookupError(f"no row for {sql!r}")
    return row[0]
