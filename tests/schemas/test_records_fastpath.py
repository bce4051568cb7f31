"""The columnar ingest fast path gives exactly what the dict builders give.

``PairwiseColumns`` / ``HHRLHFAdapter.adapt_columns`` / ``adapt_records`` skip per-row dicts and
``Table.from_pylist``; the ids they hash must not change (re-ingesting must keep deduplicating), and
the rows, rejects and counts must equal the dict path's. Ids are pinned to values computed with the
builders as they were before the fast path existed (schemas/records.py at commit 5148d74).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from schemas.adapters import get_adapter
from schemas.canonical import PAIRWISE
from schemas.ids import conversation_bytes, digest, normalise_messages
from schemas.ingest import adapt_records
from schemas.readers import RawRecord, read_all
from schemas.records import Columns, PairwiseColumns, pairwise, to_table

HH = Path(__file__).resolve().parents[2] / "examples" / "data" / "hh_rlhf_harmless_base" / "test.jsonl.gz"

ASCII = {"chosen": "\n\nHuman: What is 2+2?\n\nAssistant: 4", "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: 5"}
# Decomposed é (NFC composes it), curly quotes, CRLF inside a turn, a non-breaking space that strip() drops,
# and a field that goes to meta.
UNICODE = {
    "chosen": "\n\nHuman: cafe\u0301 \u2019quoted\u2019 \r\nline\n\nAssistant:  Oui\u00a0",
    "rejected": "\n\nHuman: cafe\u0301 \u2019quoted\u2019 \r\nline\n\nAssistant: Non\r\n",
    "extra": {"k": [1, 2.5, None]},
}
# record_id, prompt_id, chosen_id, rejected_id, meta from the builders before the fast path.
PINNED = {
    "ascii": (
        "6fe68bfb8c40fbb558913ffd2d4776bd",
        "a75d03ff617b80387a6db8e690740c2f",
        "63e2fcfa6903503f02dd37f0e393feed",
        "8d377f683f8c750419bd18ab4474fdec",
        None,
    ),
    "unicode": (
        "418374c3674897babba313838294679d",
        "e5113a4862aaa2d4d8b855ec0d8d200f",
        "683dfa14b6b8b74ddc1e5de0c83a5238",
        "d703603bee74cf66819e0e2387b7cade",
        '{"extra":{"k":[1,2.5,null]}}',
    ),
}
# sha256 over the record_id, prompt_id, chosen_id and rejected_id columns of the real file, same origin.
PINNED_FILE = "f7e7fb72b701d7bb3885285f5f8f89bfa070612fbb0a673e8ba94e2db64ddbae"
ID_COLUMNS = ("record_id", "prompt_id", "chosen_id", "rejected_id", "meta")


class DictOnly:
    """The same adapter without its ``adapt_columns`` fast path: adapt_records takes the dict path."""

    def __init__(self, adapter):
        self.adapter = adapter
        self.name = adapter.name

    def adapt(self, obj):
        return self.adapter.adapt(obj)


def _reference_pairwise(prompt, chosen, rejected, label="chosen_better", annotator_id=None, policy=None):
    """The ids as the original builder computed them, from the unchanged schemas.ids primitives."""
    p, c, r = (normalise_messages(x) for x in (prompt, chosen, rejected))
    pb, cb, rb = conversation_bytes(p), conversation_bytes(c), conversation_bytes(r)
    return {
        "prompt": p,
        "chosen": c,
        "rejected": r,
        "prompt_id": digest(pb),
        "chosen_id": digest(cb),
        "rejected_id": digest(rb),
        "record_id": digest(
            b"pairwise", pb, cb, rb, label.encode(), (annotator_id or "").encode(), (policy or "").encode()
        ),
    }


def _malformed() -> list[RawRecord]:
    """Records every rejection path of the adapter sees, plus ones only non-JSON readers can produce."""
    objs = [
        ["not", "an", "object"],
        {"chosen": "\n\nHuman: hi\n\nAssistant: a"},
        {"chosen": 5, "rejected": "x"},
        {"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": None},
        {"chosen": "no turns", "rejected": "no turns"},
        {"chosen": "pre\n\nHuman: q\n\nAssistant: a", "rejected": "pre\n\nHuman: q\n\nAssistant: b"},
        {"chosen": "\n\nHuman: q1\n\nAssistant: a", "rejected": "\n\nHuman: q2\n\nAssistant: b"},
        {"chosen": "\n\nHuman: q\n\nAssistant: ", "rejected": "\n\nHuman: q\n\nAssistant: b"},
        {"chosen": "\n\nHuman: \n\nAssistant: a", "rejected": "\n\nHuman: \n\nAssistant: b"},
        {"chosen": "\n\nHuman: q\n\nAssistant: a\n\nHuman: more", "rejected": "\n\nHuman: q\n\nAssistant: b"},
        {
            "chosen": "\n\nHuman: q\n\nAssistant: x\n\nAssistant: \n\nHuman: z\n\nAssistant: a",
            "rejected": "\n\nHuman: q\n\nAssistant: x\n\nAssistant: \n\nHuman: z\n\nAssistant: b",
        },
        # Whitespace-only differences in the context are the same prompt once normalised.
        {"chosen": "\n\nHuman: hi  \n\nAssistant: a", "rejected": "\n\nHuman:  hi\n\nAssistant: b"},
        {"chosen": "Human: no blank line\n\nAssistant: a", "rejected": "Human: no blank line\n\nAssistant: b"},
        {"chosen": "\n\nHuman: q\n\nAssistant: same", "rejected": "\n\nHuman: q\n\nAssistant:  same "},
        # A lone surrogate (Parquet/CSV readers can produce one): orjson cannot encode it → adapter_error.
        {"chosen": "\n\nHuman: q\ud800\n\nAssistant: a", "rejected": "\n\nHuman: q\ud800\n\nAssistant: b"},
        {"chosen": "\n\nHuman: q\n\nAssistant: a\ud800", "rejected": "\n\nHuman: q\n\nAssistant: b"},
        UNICODE,
        {"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: b", "n": 10**30},
    ]
    recs = [RawRecord(10_000 + i, obj, None) for i, obj in enumerate(objs)]
    recs.insert(3, RawRecord(9_999, None, b"{bad", error=None))  # obj None, no reader error: wrong_type
    return recs


def _both_paths(records: list[RawRecord]):
    adapter = get_adapter("hh-rlhf")
    kw = {"run_id": "r1", "source_file": "/data/f.jsonl", "format_name": "hh-rlhf"}
    return adapt_records(records, adapter, **kw), adapt_records(records, DictOnly(adapter), **kw)


def test_pinned_ids_through_the_adapter_both_paths():
    adapter = get_adapter("hh-rlhf")
    for name, obj in (("ascii", ASCII), ("unicode", UNICODE)):
        row = adapter.adapt(obj)[0][1]
        assert tuple(row[c] for c in ID_COLUMNS) == PINNED[name], name
        cols = Columns()
        assert adapter.adapt_columns(obj, cols, 0) == 1
        table = cols.pairwise.to_table(format_name="hh-rlhf", source_file="f", run_id="r")
        assert tuple(table.column(c)[0].as_py() for c in ID_COLUMNS) == PINNED[name], name


def test_pinned_ids_of_the_dict_builder_with_every_option():
    row = pairwise(
        [{"role": "system", "content": " sys "}, {"role": "user", "content": "q"}],
        [{"role": "assistant", "content": "a"}],
        [{"role": "assistant", "content": "b"}],
        label="tie",
        margin=1,
        origin="ai_judge",
        annotator_id=7,
        policy="p",
        meta={"z": 1},
    )
    assert (row["record_id"], row["prompt_id"], row["chosen_id"], row["rejected_id"]) == (
        "febc304d63d30f36632b05247ea87e86",
        "be1948539a1fa7cfd703bb64141c2a4f",
        "3cab1666b591e3e5c67a3699ad4b037e",
        "d323d8c2140fb51b2ed73cb4249139b6",
    )
    assert (row["meta"], row["margin"], row["annotator_id"]) == ('{"z":1}', 1.0, "7")
    assert row["prompt"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}]


def test_real_file_ids_are_pinned():
    res = adapt_records(read_all(str(HH)), get_adapter("hh-rlhf"), run_id="r", source_file="f", format_name="hh-rlhf")
    table = res.tables["pairwise"]
    h = hashlib.sha256()
    for col in ID_COLUMNS[:4]:
        h.update("\n".join(table.column(col).to_pylist()).encode())
    assert (table.num_rows, h.hexdigest()) == (2303, PINNED_FILE)
    assert dict(Counter(res.rejected.column("reason").to_pylist())) == {"empty_text": 4, "prompt_mismatch": 5}


def test_columnar_path_equals_dict_path_rows_rejects_and_counts():
    records = list(read_all(str(HH))) + _malformed()
    fast, slow = _both_paths(records)
    assert fast.tables.keys() == slow.tables.keys() == {"pairwise"}
    a, b = fast.tables["pairwise"], slow.tables["pairwise"]
    assert a.schema.equals(b.schema) and a.schema.equals(PAIRWISE)
    assert a.equals(b)
    # Same rows and same rejected rows: the source's counts (rows in = rows + rejected) are the same too.
    assert fast.records_read == slow.records_read == len(records)
    assert fast.rejected.equals(slow.rejected) and fast.rejected.num_rows > 0
    # The lone surrogates and the int orjson cannot encode into meta: rejected whole, in both paths.
    rejected = fast.rejected.to_pylist()
    errors = {r["source_row"]: r["detail"] for r in rejected if r["reason"] == "adapter_error"}
    assert sorted(errors) == [10_014, 10_015, 10_017]
    reasons = Counter(r["reason"] for r in rejected)
    assert reasons["wrong_type"] == 3 and reasons["prompt_mismatch"] >= 1
    # The whitespace-only context difference and the text-before-marker export are rows, not rejects.
    rows = {r["source_row"]: r for r in a.select(["source_row", "prompt", "meta"]).to_pylist()}
    assert rows[10_011]["prompt"] == [{"role": "user", "content": "hi"}]
    assert rows[10_012]["prompt"] == [{"role": "user", "content": "no blank line"}]
    assert rows[10_016]["meta"] == '{"extra":{"k":[1,2.5,null]}}'


def test_columnar_ids_match_the_reference_builder_row_by_row():
    fast, _ = _both_paths(list(read_all(str(HH))) + _malformed())
    for row in fast.tables["pairwise"].to_pylist():
        ref = _reference_pairwise(row["prompt"], row["chosen"], row["rejected"])
        assert {k: row[k] for k in ref} == ref


def test_a_failed_add_appends_nothing():
    cols = PairwiseColumns()
    with pytest.raises(TypeError):  # orjson cannot encode a lone surrogate
        cols.add([("user", "q\ud800")], [("assistant", "a")], [("assistant", "b")], 0)
    with pytest.raises(AttributeError):  # content that is not text
        cols.add([("user", 5)], [("assistant", "a")], [("assistant", "b")], 0)
    assert len(cols) == 0
    cols.add([("user", " q ")], [("assistant", "a")], [("assistant", "b")], 7, meta={"x": 1})
    got = cols.to_table(format_name="f", source_file="s", run_id="r")
    row = pairwise(
        [{"role": "user", "content": " q "}],
        [{"role": "assistant", "content": "a"}],
        [{"role": "assistant", "content": "b"}],
        meta={"x": 1},
    )
    row.update(format="f", source_file="s", source_row=7, run_id="r")
    assert got.equals(to_table([row], "pairwise"))


def test_every_option_of_add_matches_the_dict_builder():
    cases = [
        dict(
            label="tie",
            margin=0.25,
            origin="ai_judge",
            annotator_id=3,
            policy="ranking->pairs:all",
            meta={"a": [1, {"b": None}]},
        ),
        dict(label="chosen_better", margin=None, origin="synthetic", annotator_id="ann", policy=None, meta=None),
        dict(),
    ]
    prompt = [("system", " be brief\r\n"), ("user", "Qu\u0065\u0301?"), ("assistant", "x"), ("user", "again ")]
    cols, rows = PairwiseColumns(), []
    for i, kw in enumerate(cases):
        cols.add(prompt, [("assistant", " a "), ("user", "u"), ("assistant", "b")], [("assistant", "c")], i, **kw)
        row = pairwise(
            [{"role": r, "content": t} for r, t in prompt],
            [
                {"role": "assistant", "content": " a "},
                {"role": "user", "content": "u"},
                {"role": "assistant", "content": "b"},
            ],
            [{"role": "assistant", "content": "c"}],
            **kw,
        )
        row.update(format="f", source_file="s", source_row=i, run_id="r")
        rows.append(row)
    fast = cols.to_table(format_name="f", source_file="s", run_id="r")
    assert fast.equals(to_table(rows, "pairwise"))
    # The from_pylist fallback (taken when a column would pass 2 GiB) builds the same table.
    assert cols._table_via_pylist(format_name="f", source_file="s", run_id="r").equals(fast)


def test_no_rows_no_tables():
    assert Columns().tables(format_name="f", source_file="s", run_id="r") == {}
    empty = PairwiseColumns().to_table(format_name="f", source_file="s", run_id="r")
    assert empty.num_rows == 0 and empty.schema.equals(PAIRWISE)
    res = adapt_records([], get_adapter("hh-rlhf"), run_id="r", source_file="f", format_name="hh-rlhf")
    assert res.tables == {} and res.rejected.num_rows == 0 and res.records_read == 0


def test_conversation_column_layout_matches_from_pylist():
    cols = PairwiseColumns()
    cols.add([("user", "a"), ("assistant", "b"), ("user", "c")], [("assistant", "d")], [("assistant", "e")], 0)
    cols.add([("user", "f")], [("assistant", "g")], [("assistant", "h")], 1)
    table = cols.to_table(format_name="f", source_file="s", run_id="r")
    prompt = table.column("prompt").combine_chunks()
    assert isinstance(prompt, pa.ListArray) and prompt.offsets.to_pylist() == [0, 3, 4]
    assert prompt.to_pylist()[0] == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
