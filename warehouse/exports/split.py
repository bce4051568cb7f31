"""Deterministic train/test split by a grouping key (a prompt, or a prompt cluster).

A row is in test when hash(seed, key) / 2^64 < fraction, so every row of one key lands in the same
split, the split does not depend on row order or on which other rows exist, and a seed reshuffles.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

from warehouse.errors import WarehouseError


def key_values(table: pa.Table, column: str) -> list[str]:
    if column not in table.column_names:
        raise WarehouseError(
            f"split key {column!r} is not a column of this version "
            f"(available: {', '.join(c for c in table.column_names if not c.startswith('__'))})"
        )
    col = table.column(column)
    if col.null_count:
        raise WarehouseError(f"split key {column!r} has {col.null_count} null values")
    return [str(v) for v in col.to_pylist()]


def test_mask(keys: list[str], fraction: float, seed: int) -> list[bool]:
    threshold = int(fraction * 2**64)
    salt = f"{int(seed)}\x1f".encode()
    decided: dict[str, bool] = {}
    out = []
    for k in keys:
        v = decided.get(k)
        if v is None:
            h = int.from_bytes(
                hashlib.blake2b(salt + k.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big"
            )
            v = decided[k] = h < threshold
        out.append(v)
    return out
