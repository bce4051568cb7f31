"""Does a table's Arrow schema match a canonical shape? (Staged shards and derived tables are checked.)"""

from __future__ import annotations

import pyarrow as pa


def _norm(t: pa.DataType) -> pa.DataType:
    """Type identity that ignores list child names, nullability and large/small variants."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return pa.list_(_norm(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _norm(f.type)) for f in t])
    return t


def schema_problems(schema: pa.Schema, expected: pa.Schema, allow_extra: bool) -> list[str]:
    problems = []
    for f in expected:
        if f.name not in schema.names:
            problems.append(f"missing column {f.name!r}")
        elif _norm(schema.field(f.name).type) != _norm(f.type):
            problems.append(f"column {f.name!r} is {schema.field(f.name).type}, expected {f.type}")
    if not allow_extra:
        extra = [n for n in schema.names if n not in expected.names]
        if extra:
            problems.append(f"unexpected columns {extra}")
    return problems
