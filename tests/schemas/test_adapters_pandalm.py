"""pandalm adapter on the real 999-item test set (3 annotators each), plus bad labels and items."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import orjson
import pytest

from schemas.adapters import AdaptError, get_adapter
from schemas.ids import normalise_text
from schemas.ingest import adapt_records
from schemas.readers import read_all

PANDA = Path(__file__).resolve().parents[2] / "examples" / "data" / "pandalm_testset" / "testset-v1.json"
ANNOTATORS = ("annotator1", "annotator2", "annotator3")


def _usable(item: dict) -> bool:
    """Both responses are non-blank text (6 are JSON booleans, 54 are empty in the shipped file)."""
    return all(isinstance(item[k], str) and item[k].strip() for k in ("response1", "response2"))


def _ingest():
    return adapt_records(
        read_all(str(PANDA)), get_adapter("pandalm"), run_id="r", source_file=str(PANDA), format_name="pandalm"
    )


def test_one_row_per_annotator_and_ties_from_zero_labels(adapt_file):
    source = json.loads(PANDA.read_text())
    usable = [s for s in source if _usable(s)]
    res = _ingest()
    rows = res.tables["pairwise"].to_pylist()
    assert len(source) == 999
    assert len(rows) == 3 * len(usable)
    assert Counter(r["label"] for r in rows)["tie"] == sum(s[a] == 0 for s in usable for a in ANNOTATORS)
    assert Counter(r["annotator_id"] for r in rows) == {f"pandalm:{a}": len(usable) for a in ANNOTATORS}
    assert Counter(res.rejected.column("reason").to_pylist()) == {
        "wrong_type": sum(any(not isinstance(s[k], str) for k in ("response1", "response2")) for s in source),
        "empty_text": sum(
            not _usable(s) and all(isinstance(s[k], str) for k in ("response1", "response2")) for s in source
        ),
    }
    # The source counts one row in per candidate row plus one per record rejected before any row.
    _, counts = adapt_file(PANDA, "pandalm")
    assert counts.rows_in == len(rows) + res.rejected.num_rows and counts.rows_kept == len(rows)
    assert counts.records_read == 999


def test_chosen_follows_each_label():
    source = {s["idx"]: s for s in json.loads(PANDA.read_text())}
    for row in _ingest().tables["pairwise"].to_pylist():
        meta = orjson.loads(row["meta"])
        src = source[meta["idx"]]
        label = src[row["annotator_id"].split(":")[1]]
        r1, r2 = normalise_text(src["response1"]), normalise_text(src["response2"])
        chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        if label == 2:
            assert (chosen, rejected, row["label"], meta["chosen_position"]) == (r2, r1, "chosen_better", 2)
        else:  # 1, and 0 (tie) keeps response1 first
            assert (chosen, rejected, meta["chosen_position"]) == (r1, r2, 1)
            assert row["label"] == ("tie" if label == 0 else "chosen_better")
        prompt = row["prompt"][0]["content"]
        assert prompt.startswith(normalise_text(src["instruction"])) and prompt.endswith(normalise_text(src["input"]))
        assert {"motivation_app", "cmp_key"} <= set(meta)


def test_record_ids_are_stable_and_identify_content():
    rows = _ingest().tables["pairwise"].to_pylist()
    ids = [r["record_id"] for r in rows]
    assert ids == _ingest().tables["pairwise"].column("record_id").to_pylist()
    # Different items can hold the same content (two models answered identically), and then share an
    # id: the warehouse counts those as duplicates. Ids are equal exactly when the content is.
    content = {(str(r["prompt"]), str(r["chosen"]), str(r["rejected"]), r["label"], r["annotator_id"]) for r in rows}
    assert len(set(ids)) == len(content) < len(ids)
    by_item = Counter((orjson.loads(r["meta"])["idx"], r["record_id"]) for r in rows)
    assert set(by_item.values()) == {1}  # the three annotators of one item never collide


ITEM = {
    "idx": 1,
    "instruction": "Fix the grammar.",
    "input": "he go home",
    "response1": "He goes home.",
    "response2": "He go home.",
    "annotator1": 1,
    "annotator2": 2,
    "annotator3": 0,
}


def test_blank_instruction_with_input_is_a_prompt():
    rows = get_adapter("pandalm").adapt({**ITEM, "instruction": " ", "input": "Truthfulness"})
    assert rows[0][1]["prompt"] == [{"role": "user", "content": "Truthfulness"}]


def test_one_bad_label_keeps_the_other_two_rows():
    items = get_adapter("pandalm").adapt({**ITEM, "annotator2": 3})
    assert [type(i).__name__ if isinstance(i, AdaptError) else i[1]["annotator_id"] for i in items] == [
        "pandalm:annotator1",
        "AdaptError",
        "pandalm:annotator3",
    ]
    assert items[1].reason == "unknown_label" and "annotator2" in items[1].detail


@pytest.mark.parametrize("value", ["1", True, None, 1.5, -1])
def test_unknown_label_values(value):
    items = get_adapter("pandalm").adapt({**ITEM, "annotator1": value})
    assert isinstance(items[0], AdaptError) and items[0].reason == "unknown_label"
    assert len(items) == 3


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"response1": None}, "missing_field"),
        ({"response2": True}, "wrong_type"),
        ({"response1": "   "}, "empty_text"),
        ({"instruction": "", "input": ""}, "empty_text"),
        ({"annotator1": None, "annotator2": None, "annotator3": None, "extra": 1}, None),
    ],
)
def test_bad_items(change, expected):
    obj = {**ITEM, **change}
    if expected is None:  # present-but-null labels: three unknown_label items, not a crash
        assert [i.reason for i in get_adapter("pandalm").adapt(obj)] == ["unknown_label"] * 3
        return
    with pytest.raises(AdaptError) as e:
        get_adapter("pandalm").adapt(obj)
    assert e.value.reason == expected


def test_no_annotator_columns_is_missing_field():
    with pytest.raises(AdaptError) as e:
        get_adapter("pandalm").adapt({k: v for k, v in ITEM.items() if not k.startswith("annotator")})
    assert e.value.reason == "missing_field"
