"""The Beam ingest pipeline on real bundled data, with bad rows mixed in."""
import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.ingest import run_ingest

HH = Path(__file__).resolve().parents[2] / "examples" / "data" / "hh_rlhf_harmless_base" / "test.jsonl.gz"


def _mixed_file(tmp_path: Path, n_good: int = 300) -> tuple[Path, int]:
    lines = gzip.open(HH, "rb").read().split(b"\n")[:n_good]
    bad = [
        b"{not json",
        b'{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: a"}',  # missing rejected
        b'{"chosen": 5, "rejected": "x"}',  # wrong type
        b'{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: same", "rejected": "\\n\\nHuman: hi\\n\\nAssistant: same"}',
        b"\xff\xfe broken utf8",
    ]
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        if i % 60 == 0 and bad:
            out.append(bad.pop())
    out.extend(bad)
    p = tmp_path / "mixed.jsonl"
    p.write_bytes(b"\n".join(out) + b"\n")
    return p, n_good


def test_counts_add_up_and_bad_rows_are_quarantined(tmp_path):
    src, n_good = _mixed_file(tmp_path)
    # The same real lines alone: the real data has a few rows of its own that fail (empty turns).
    clean = tmp_path / "clean.jsonl"
    clean.write_bytes(b"\n".join(gzip.open(HH, "rb").read().split(b"\n")[:n_good]) + b"\n")
    base = run_ingest([str(clean)], "hh-rlhf", run_id="r0", staging=tmp_path / "s0")
    staging = tmp_path / "staging"
    counts = run_ingest([str(src)], "hh-rlhf", run_id="r1", staging=staging, chunk_rows=64)
    assert counts.records_read == n_good + 5
    assert counts.rows_read == counts.rows_kept + counts.rows_rejected
    assert counts.rows_rejected == base.rows_rejected + 5
    assert counts.rows_kept == base.rows_kept
    for reason in ("invalid_json", "missing_field", "wrong_type", "chosen_equals_rejected", "invalid_utf8"):
        assert counts.reasons[reason] == base.reasons[reason] + 1, reason
    kept = pq.read_table(staging / "pairwise")
    assert kept.num_rows == counts.rows_kept
    # Lineage: every kept row names its file and its line in it, and lines are unique.
    rows = kept.select(["source_file", "source_row", "run_id"]).to_pylist()
    assert {r["source_file"] for r in rows} == {str(src.resolve())}
    assert len({r["source_row"] for r in rows}) == counts.rows_kept
    q = pq.read_table(staging / "quarantine").to_pylist()
    assert len(q) == counts.rows_rejected and all(r["reason"] and r["raw"] is not None for r in q)
    # The bad line's row number points at the actual line in the file.
    lines = src.read_bytes().split(b"\n")
    bad_json = next(r for r in q if r["reason"] == "invalid_json")
    assert lines[bad_json["source_row"]] == b"{not json"


def test_chunking_does_not_change_the_result(tmp_path):
    src, _ = _mixed_file(tmp_path, 200)
    a = run_ingest([str(src)], "hh-rlhf", run_id="a", staging=tmp_path / "a", chunk_rows=17)
    b = run_ingest([str(src)], "hh-rlhf", run_id="b", staging=tmp_path / "b", chunk_rows=100_000)
    ids_a = sorted(pq.read_table(tmp_path / "a" / "pairwise").column("record_id").to_pylist())
    ids_b = sorted(pq.read_table(tmp_path / "b" / "pairwise").column("record_id").to_pylist())
    assert ids_a == ids_b and a.rows_rejected == b.rows_rejected


def test_empty_file_reads_nothing(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_bytes(b"")
    counts = run_ingest([str(p)], "hh-rlhf", run_id="e", staging=tmp_path / "s")
    assert counts.records_read == 0 and counts.rows_read == 0


def test_record_over_size_limit_is_quarantined_not_loaded(tmp_path):
    big = json.dumps({"chosen": "\n\nHuman: q\n\nAssistant: " + "x" * (10 * 1024 * 1024),
                      "rejected": "\n\nHuman: q\n\nAssistant: no"})
    good = json.dumps({"chosen": "\n\nHuman: q\n\nAssistant: yes", "rejected": "\n\nHuman: q\n\nAssistant: no"})
    p = tmp_path / "big.jsonl"
    p.write_text(good + "\n" + big + "\n" + good.replace("yes", "sure") + "\n")
    counts = run_ingest([str(p)], "hh-rlhf", run_id="b", staging=tmp_path / "s", max_record_bytes=1024 * 1024)
    assert counts.rows_kept == 2 and counts.reasons["record_too_large"] == 1
    q = pq.read_table(tmp_path / "s" / "quarantine").to_pylist()[0]
    assert q["source_row"] == 1 and len(q["raw"]) < 100_000  # the raw text is capped
