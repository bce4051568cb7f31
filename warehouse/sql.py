"""SQL text helpers for the few places where values must be literals (table function arguments, DDL)."""

from __future__ import annotations


def lit(value) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def lit_list(values) -> str:
    return "[" + ", ".join(lit(v) for v in values) + "]"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def one(con, sql: str, params: list | None = None):
    """First row or None. Results are always drained: DuckDB 2 refuses new work on a connection
    whose previous result was not fetched to the end."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None
