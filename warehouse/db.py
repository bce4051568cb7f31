"""DuckDB connections to the catalog: short-lived, so readers and the writer rarely collide.

DuckDB lets one process hold a database file read-write *or* many processes hold it read-only, so
connections are opened per operation and retried briefly while another process holds the file.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import duckdb

from warehouse.errors import WarehouseBusy, WarehouseError, one_line
from warehouse.layout import Layout

READ_BUSY_S = 30.0  # a reader waits this long for a commit's transaction to finish
WRITE_BUSY_S = 300.0  # a writer (already holding the lock file) waits out long-running queries


def _quiet(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    # DuckDB draws a progress bar on stdout for long queries; the CLI owns the terminal.
    con.execute("SET enable_progress_bar = false")
    return con


def _retry_open(
    open_fn: Callable[[], duckdb.DuckDBPyConnection], layout: Layout, busy_s: float
) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + busy_s
    delay = 0.02
    while True:
        try:
            return _quiet(open_fn())
        except duckdb.IOException as e:
            # DuckDB says only in words that another process holds the file; that is worth a retry.
            if "lock" not in str(e).lower():
                raise WarehouseError(f"cannot open the catalog {layout.catalog}: {one_line(e)}") from None
            if time.monotonic() > deadline:
                raise WarehouseBusy(f"the catalog {layout.catalog} is busy: {one_line(e)}") from None
        except duckdb.Error as e:  # not a DuckDB file, wrong version, ...
            raise WarehouseError(f"cannot open the catalog {layout.catalog}: {one_line(e)}") from None
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def connect_write(layout: Layout) -> duckdb.DuckDBPyConnection:
    layout.tmp.mkdir(parents=True, exist_ok=True)
    con = _retry_open(lambda: duckdb.connect(str(layout.catalog)), layout, WRITE_BUSY_S)
    con.execute("SET temp_directory = ?", [str(layout.tmp)])
    return con


def connect_read(layout: Layout, sandbox: bool = False) -> duckdb.DuckDBPyConnection:
    """Read-only catalog connection. ``sandbox`` also confines file access to the lake and locks settings."""
    if not layout.exists():
        raise WarehouseError(f"no warehouse at {layout.root} (nothing has been committed there yet)")
    con = _retry_open(lambda: duckdb.connect(str(layout.catalog), read_only=True), layout, READ_BUSY_S)
    if sandbox:
        # Defence in depth under the statement check: no file outside the lake, no settings changes.
        con.execute("SET allowed_directories = ?", [[str(layout.lake) + "/"]])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    return con


def work_connection(layout: Layout) -> duckdb.DuckDBPyConnection:
    """In-memory DuckDB for heavy lifting (dedup, object writes) away from the catalog file."""
    layout.tmp.mkdir(parents=True, exist_ok=True)
    con = _quiet(duckdb.connect())
    con.execute("SET temp_directory = ?", [str(layout.tmp)])
    return con
