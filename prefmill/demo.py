"""`make demo`: the main flow on the bundled real data, then a summary and a sample query.

Ingests every bundled format through the Prefect flow (ephemeral, no server), curates the
human pairs (embedding a sample on CPU, dedup, ISA selection), exports TRL DPO files and prints
what happened. The demo warehouse is rebuilt from scratch each time.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from prefmill.config import quiet_env

quiet_env()
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "examples" / "data"
OUT = ROOT / ".prefmill" / "demo"

SOURCES = [
    ("hh_rlhf_harmless_base/test.jsonl.gz", "hh-rlhf"),
    ("llamafactory_dpo_en_demo/dpo_en_demo.json", "sharegpt"),
    ("llamafactory_kto_en_demo/kto_en_demo.json", "sharegpt"),
    ("oasst_en_100_trees/en_100_tree.jsonl", "oasst"),
    ("topical_chat_usr_ratings/topical_chat.json", "ratings"),
    ("pandalm_testset/testset-v1.json", "pandalm"),
]

console = Console(width=120)


def _table(t, title):
    tab = Table(title=title)
    for c in t.column_names:
        tab.add_column(c, overflow="fold", max_width=48)
    for row in t.to_pylist():
        tab.add_row(*["" if v is None else str(v)[:120] for v in row.values()])
    console.print(tab)


def main() -> None:
    from flows.ingest_flow import ingest_flow
    from prefmill.demo_curate import curate_demo
    from warehouse import Warehouse

    shutil.rmtree(OUT, ignore_errors=True)
    wh_dir = OUT / "warehouse"
    t0 = time.perf_counter()
    for rel, fmt in SOURCES:
        console.print(f"[bold]ingest[/] {rel} as {fmt}")
        summary = ingest_flow(paths=[str(DATA / rel)], format_name=fmt, dataset="human", warehouse=str(wh_dir))
        console.print(
            f"  read {summary['rows_read']:,} = kept {summary['rows_kept']:,} + rejected "
            f"{summary['rows_rejected']:,} + duplicate {summary['rows_duplicate']:,}"
            f"  → version {summary['version_id']}"
        )
    wh = Warehouse(wh_dir)
    sql = (
        "SELECT annotator_id, label, count(*) AS n FROM pairs "
        "WHERE annotator_id LIKE 'pandalm:%' GROUP BY ALL ORDER BY annotator_id, label"
    )
    console.print(f'[bold]sample query[/]: prefmill query "{sql}"')
    _table(wh.query(sql), "PandaLM labels per annotator (ties kept as ties)")
    curate_demo(wh, console)
    from warehouse.export import export

    res = export(wh, "human", "trl-dpo", OUT / "export" / "trl-dpo", split_key="prompt_cluster")
    console.print(f"[bold]export[/] trl-dpo of version {res.version_id} → {OUT / 'export' / 'trl-dpo'}: {res.counts}")
    _table(
        wh.query(
            "SELECT kind, status, rows_read, rows_kept, rows_rejected, rows_duplicate FROM runs ORDER BY started_at"
        ),
        "runs (rows_read = kept + rejected + duplicate)",
    )
    _table(
        wh.query(
            "SELECT format, origin, count(*) AS pairs, count(DISTINCT prompt_cluster) AS prompt_clusters "
            "FROM pairs GROUP BY ALL ORDER BY pairs DESC"
        ),
        "curated pairs by source format",
    )
    _table(
        wh.query("SELECT reason, count(*) AS n FROM quarantine GROUP BY reason ORDER BY n DESC"), "quarantine reasons"
    )
    console.print(
        f"done in {time.perf_counter() - t0:.0f}s. Try: .venv/bin/prefmill query "
        f'"SELECT count(*) FROM pairs" --warehouse {wh_dir}'
    )


if __name__ == "__main__":
    main()
