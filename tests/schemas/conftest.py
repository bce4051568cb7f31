from collections.abc import Callable

import pyarrow as pa
import pytest

from schemas.ingest import AdaptSource
from schemas.step import Counts, SourceResult


def _adapt_file(path, format_name: str, **kwargs) -> tuple[SourceResult, Counts]:
    """Every chunk of ``path`` through ``AdaptSource`` as the executor calls it: the chunks' results
    joined, and the counts the source kept itself."""
    source = AdaptSource([str(path)], format_name, run_id="r", **kwargs)
    source.check()
    source.setup()
    results = [source(chunk) for chunk in source.plan()]
    source.teardown()
    tables: dict[str, list[pa.Table]] = {}
    for r in results:
        for shape, t in r.tables.items():
            tables.setdefault(shape, []).append(t)
    joined = SourceResult(
        {shape: pa.concat_tables(ts) for shape, ts in tables.items()},
        pa.concat_tables([r.rejected for r in results]) if results else SourceResult({}).rejected,
        sum(r.records_read for r in results),
    )
    return joined, source.take_counts()


@pytest.fixture
def adapt_file() -> Callable[..., tuple[SourceResult, Counts]]:
    return _adapt_file
