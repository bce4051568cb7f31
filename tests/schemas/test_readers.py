"""schemas/readers.py: file → raw records, bad lines as rejections, chunks that cover every row once."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.readers import SourceError, plan_chunks, read_all, read_chunk

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _records(path: str, **kw) -> list:
    return list(read_all(path, **kw))


def test_invalid_json_line_between_good_lines_is_one_rejection(tmp_path):
    path = _write(tmp_path / "a.jsonl", b'{"x": 1}\n{"x": 2,\n{"x": 3}\n')
    recs = _records(path)
    assert [r.source_row for r in recs] == [0, 1, 2]
    assert [r.obj for r in recs] == [{"x": 1}, None, {"x": 3}]
    bad = recs[1]
    assert bad.error.reason == "invalid_json" and bad.error.step == "parse"
    assert bad.error.source_row == 1 and bad.raw == b'{"x": 2,'


def test_invalid_utf8_is_its_own_reason(tmp_path):
    path = _write(tmp_path / "a.jsonl", b'{"x": "ok"}\n{"x": "\xff\xfe"}\n{"x": "fine"}\n')
    recs = _records(path)
    assert [r.error.reason if r.error else None for r in recs] == [None, "invalid_utf8", None]
    assert recs[2].obj == {"x": "fine"}


def test_blank_lines_are_not_records_but_rows_keep_line_numbers(tmp_path):
    path = _write(tmp_path / "a.jsonl", b'{"x": 1}\n\n   \n{"x": 2}\r\n\n')
    recs = _records(path)
    assert [(r.source_row, r.obj) for r in recs] == [(0, {"x": 1}), (3, {"x": 2})]
    assert all(r.error is None for r in recs)


def test_record_over_the_size_limit_is_rejected_not_loaded(tmp_path):
    big = json.dumps({"chosen": "x" * (10 * 1024 * 1024)}).encode()
    path = _write(tmp_path / "a.jsonl", b'{"x": 1}\n' + big + b'\n{"x": 2}\n')
    recs = _records(path)
    assert [r.obj for r in recs] == [{"x": 1}, None, {"x": 2}]
    assert recs[1].error.reason == "record_too_large"
    assert str(len(big)) in recs[1].error.detail
    # The same record is fine under a larger limit.
    assert _records(path, max_record_bytes=len(big))[1].obj["chosen"].startswith("xxx")


def test_empty_file_has_zero_chunks(tmp_path):
    for name in ("e.jsonl", "e.json"):
        assert plan_chunks(_write(tmp_path / name, b"")) == []
    assert plan_chunks(_write(tmp_path / "e.jsonl.gz", gzip.compress(b""))) == []


def test_missing_unsupported_and_directory_sources_raise_source_error(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        plan_chunks(str(tmp_path / "nope.jsonl"))
    with pytest.raises(SourceError, match="unsupported file type"):
        plan_chunks(_write(tmp_path / "a.txt", b"{}"))
    (tmp_path / "d.jsonl").mkdir()
    with pytest.raises(SourceError, match="directory"):
        plan_chunks(str(tmp_path / "d.jsonl"))


def test_json_suffix_is_sniffed_array_or_lines(tmp_path):
    arr = _write(tmp_path / "arr.json", b'  \n[{"x": 1}, {"x": 2}, {"x": 3}]')
    lines = _write(tmp_path / "lines.json", b'{"x": 1}\n{"x": 2}\n')
    assert [(r.source_row, r.obj) for r in _records(arr)] == [(0, {"x": 1}), (1, {"x": 2}), (2, {"x": 3})]
    assert [r.obj for r in _records(lines)] == [{"x": 1}, {"x": 2}]
    assert plan_chunks(arr)[0].kind == "records" and plan_chunks(lines)[0].kind == "jsonl-range"


def test_broken_json_array_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="not valid JSON"):
        plan_chunks(_write(tmp_path / "a.json", b'[{"x": 1}, '))
    with pytest.raises(SourceError, match="not valid JSON"):
        plan_chunks(_write(tmp_path / "b.json.gz", gzip.compress(b'[{"x": 1}')))


def test_byte_order_mark_is_ignored(tmp_path):
    bom = b"\xef\xbb\xbf"
    arr = _write(tmp_path / "a.json", bom + b'[{"x": 1}, {"x": 2}]')
    lines = _write(tmp_path / "b.jsonl", bom + b'{"x": 1}\n{"x": 2}\n')
    assert [r.obj for r in _records(arr)] == [{"x": 1}, {"x": 2}]
    assert [r.obj for r in _records(lines)] == [{"x": 1}, {"x": 2}]


def test_gzip_jsonl_keeps_bad_lines_as_rejections(tmp_path):
    path = _write(tmp_path / "a.jsonl.gz", gzip.compress(b'{"x": 1}\nnot json\n\n{"x": 2}\n'))
    recs = _records(path)
    assert [(r.source_row, r.obj, r.error.reason if r.error else None) for r in recs] == [
        (0, {"x": 1}, None),
        (1, None, "invalid_json"),
        (3, {"x": 2}, None),
    ]
    assert recs[1].raw == b"not json"


def test_corrupt_or_truncated_gzip_is_a_source_error(tmp_path):
    data = gzip.compress(b'{"a": 1}\n' * 2000)
    corrupt = data[:20] + bytes(b ^ 0xFF for b in data[20:60]) + data[60:]
    with pytest.raises(SourceError):
        plan_chunks(_write(tmp_path / "c.jsonl.gz", corrupt))
    with pytest.raises(SourceError, match="ended before"):
        plan_chunks(_write(tmp_path / "t.jsonl.gz", data[: len(data) // 2]))


def test_real_gzip_file_reads_every_line():
    path = DATA / "hh_rlhf_harmless_base" / "test.jsonl.gz"
    with gzip.open(path, "rb") as f:
        lines = [ln for ln in f.read().split(b"\n") if ln.strip()]
    recs = _records(str(path))
    assert len(recs) == len(lines)
    assert all(r.error is None and set(r.obj) == {"chosen", "rejected"} for r in recs)
    assert recs[-1].obj == json.loads(lines[-1])


@pytest.mark.parametrize("trailing_newline", [True, False])
def test_chunk_boundaries_cover_every_row_once(tmp_path, trailing_newline):
    body = b"\n".join(json.dumps({"i": i}).encode() for i in range(50))
    path = _write(tmp_path / "a.jsonl", body + (b"\n" if trailing_newline else b""))
    chunks = plan_chunks(path, chunk_rows=7)
    assert len(chunks) == 8  # 7 full chunks of 7 rows + one of 1
    assert [c.first_row for c in chunks] == list(range(0, 50, 7))
    seen = [r for c in chunks for r in read_chunk(c)]
    assert [r.source_row for r in seen] == list(range(50))
    assert all(r.obj == {"i": r.source_row} for r in seen)


def test_record_chunks_of_a_json_array_keep_their_rows(tmp_path):
    path = _write(tmp_path / "a.json", json.dumps([{"i": i} for i in range(50)]).encode())
    chunks = plan_chunks(path, chunk_rows=7)
    assert [len(c.records) for c in chunks] == [7] * 7 + [1]
    seen = [r for c in chunks for r in read_chunk(c)]
    assert [(r.source_row, r.obj["i"]) for r in seen] == [(i, i) for i in range(50)]


def test_parquet_and_csv_sources(tmp_path):
    rows = [{"prompt": "p\nwith a second line", "score": 1.5}, {"prompt": "q", "score": 2.0}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    assert [r.obj for r in _records(str(tmp_path / "a.parquet"))] == rows
    csv = tmp_path / "a.csv"
    csv.write_text('prompt,score\n"p\nwith a second line",1.5\nq,2.0\n')
    assert [r.obj for r in _records(str(csv))] == rows


def test_csv_with_multiline_cells_larger_than_one_parse_block(tmp_path):
    # pyarrow parses CSV in ~1 MB blocks; quoted newlines past the first block need newlines_in_values.
    n = 30_000
    lines = ["id,text"] + [f'{i},"first line {i}\nsecond, line"' for i in range(n)]
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 1_000_000
    recs = _records(str(path))
    assert len(recs) == n
    assert recs[-1].obj == {"id": n - 1, "text": f"first line {n - 1}\nsecond, line"}


def test_bad_parquet_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="Parquet"):
        plan_chunks(_write(tmp_path / "a.parquet", b"PAR1 not really"))
