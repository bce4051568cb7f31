"""Row fingerprints of the demo's runs, so a refactor can prove it keeps the rows.

``python -m tests.golden.fingerprint --write`` records them (tests/golden/demo_rows.json); the test in
this folder recomputes them and compares. A fingerprint holds counts and reasons in the clear and a
sha256 of every row's content (all but run ids and timestamps; paths made relative to the repo), so a
changed row, id, reason or selection shows up as a changed digest next to readable counts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import orjson
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples" / "data"
GOLDEN = Path(__file__).with_name("demo_rows.json")

# A frozen copy of the demo's sources (prefmill/demo.py): the fingerprints must not move when the demo does.
SOURCES = [
    ("hh_rlhf_harmless_base/test.jsonl.gz", "hh-rlhf"),
    ("llamafactory_dpo_en_demo/dpo_en_demo.json", "sharegpt"),
    ("llamafactory_kto_en_demo/kto_en_demo.json", "sharegpt"),
    ("oasst_en_100_trees/en_100_tree.jsonl", "oasst"),
    ("topical_chat_usr_ratings/topical_chat.json", "ratings"),
    ("pandalm_testset/testset-v1.json", "pandalm"),
]
SHAPES = ("pairwise", "binary", "listwise", "ratings")
# Run ids also appear inside raw rows a validator quarantined.
_RUN_ID = re.compile(r"\b[a-z_]+-\d{8}T\d{6}-[0-9a-f]{8}\b")
_VOLATILE = {"run_id", "created_at", "started_at", "finished_at"}


def _digest(rows: list[dict]) -> str:
    text = orjson.dumps(rows, option=orjson.OPT_SORT_KEYS, default=str).decode().replace(str(ROOT), "<root>")
    text = _RUN_ID.sub("<run>", text)
    return hashlib.sha256(text.encode()).hexdigest()


def table_digest(table: pa.Table, key: list[str]) -> str:
    cols = [c for c in table.column_names if c not in _VOLATILE]
    rows = table.select(cols).to_pylist()
    rows.sort(key=lambda r: orjson.dumps([r.get(k) for k in key], default=str))
    return _digest(rows)


def _steps(wh, run_id: str) -> list[list]:
    t = wh.query(
        f"SELECT step, rows_in, rows_kept, rows_rejected, rows_duplicate FROM run_steps "
        f"WHERE run_id = '{run_id}' ORDER BY position"
    )
    return [list(r.values()) for r in t.to_pylist()]


def _counts(c) -> list[int]:
    return [c.records_read, c.rows_read, c.rows_kept, c.rows_rejected, c.rows_duplicate]


def _quarantine(wh, run_id: str) -> dict:
    q = wh.query(f"SELECT * FROM quarantine WHERE run_id = '{run_id}'")
    reasons = Counter(f"{s}:{r}" for s, r in zip(q.column("step").to_pylist(), q.column("reason").to_pylist()))
    return {
        "rows": q.num_rows,
        "reasons": dict(sorted(reasons.items())),
        "digest": table_digest(
            q.drop_columns([c for c in q.column_names if c == "dataset"]),
            ["step", "reason", "source_row", "record_id", "detail", "raw"],
        ),
    }


def _new_rows(wh, dataset: str, run_id: str) -> dict:
    out = {}
    for shape in SHAPES:
        t = wh.read(dataset, shape)
        t = t.filter(pa.compute.equal(t.column("run_id"), run_id))
        if t.num_rows:
            out[shape] = {
                "rows": t.num_rows,
                "ids": _digest(sorted(t.column("record_id").to_pylist())),
                "content": table_digest(t, ["record_id"]),
            }
    return out


def fingerprint(root: Path) -> dict:
    """Run the demo's ingests and two curate runs into a fresh warehouse at ``root``; fingerprint each."""
    from flows.curate import curate
    from flows.jobs import ingest
    from pipelines.curate import CurateParams
    from warehouse import Warehouse

    wh = Warehouse(root)
    out: dict = {"ingest": [], "curate": []}
    for rel, fmt in SOURCES:
        # checks=[]: the rows as ingest made them before the ingest checks (special_tokens) existed.
        rep = ingest(wh, [str(DATA / rel)], fmt, "human", checks=[])
        out["ingest"].append(
            {
                "source": rel,
                "format": fmt,
                "counts": _counts(rep.commit.counts),
                "steps": _steps(wh, rep.run_id),
                "quarantine": _quarantine(wh, rep.run_id),
                "rows": _new_rows(wh, "human", rep.run_id),
            }
        )
    rep = ingest(wh, [str(DATA / "llamafactory_dpo_en_demo/dpo_en_demo.json")], "sharegpt", "dpo", checks=[])
    runs = [
        ("human", CurateParams(method="isa", budget=0.25, sample=400, seed=0)),
        ("dpo", CurateParams(method="kcenter", budget=0.5, cluster_cap=2, near_threshold=0.7, seed=1)),
        ("dpo", CurateParams(method="random", budget=0.5, semantic_threshold=0.9, seed=2)),
    ]
    for dataset, params in runs:
        rep = curate(wh, dataset, params)
        kept = wh.read(dataset, "pairwise", rep.commit.version_id)
        rem = wh.query(
            f"SELECT record_id, step, reason, duplicate_of, detail FROM removals WHERE run_id = '{rep.run_id}'"
        )
        reasons = Counter(f"{s}:{r}" for s, r in zip(rem.column("step").to_pylist(), rem.column("reason").to_pylist()))
        out["curate"].append(
            {
                "dataset": dataset,
                "method": params.method,
                "counts": _counts(rep.commit.counts),
                "steps": _steps(wh, rep.run_id),
                "kept": kept.num_rows,
                "kept_ids": _digest(sorted(kept.column("record_id").to_pylist())),
                "kept_content": table_digest(kept, ["record_id"]),
                "removals": {
                    "rows": rem.num_rows,
                    "reasons": dict(sorted(reasons.items())),
                    "digest": table_digest(rem, ["record_id", "step"]),
                },
            }
        )
    return out


def main() -> None:
    import tempfile

    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true", help=f"record into {GOLDEN.name}")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fp = fingerprint(Path(tmp) / "wh")
    text = json.dumps(fp, indent=1, sort_keys=True)
    if args.write:
        GOLDEN.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
