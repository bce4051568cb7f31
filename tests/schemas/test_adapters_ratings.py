"""ratings adapter on the real Topical-Chat USR file, HelpSteer-style flat rows, and bad scores."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import orjson
import pytest

from schemas.adapters import AdaptError, get_adapter
from schemas.adapters.ratings import TOPICAL_CHAT_SCALES
from schemas.ids import normalise_text
from schemas.ingest import adapt_records
from schemas.readers import read_all

TC = Path(__file__).resolve().parents[2] / "examples" / "data" / "topical_chat_usr_ratings" / "topical_chat.json"


def _rows(**options):
    res = adapt_records(
        read_all(str(TC)), get_adapter("ratings", **options), run_id="r", source_file=str(TC), format_name="ratings"
    )
    assert not res.rejected.num_rows
    return res.tables["ratings"].to_pylist()


def test_topical_chat_rows_carry_six_scaled_attributes():
    source = json.loads(TC.read_text())
    rows = _rows()
    assert len(rows) == len(source) == 360
    for row, src in zip(rows, source):
        got = {r["attribute"]: r["value"] for r in row["ratings"]}
        assert got == src["scores"]
        assert all((r["scale_min"], r["scale_max"]) == TOPICAL_CHAT_SCALES[r["attribute"]] for r in row["ratings"])
        turns = [t for t in src["source"].split("\n") if t.strip()]
        assert [m["content"] for m in row["prompt"][1:]] == [normalise_text(t) for t in turns]
        assert row["prompt"][0] == {"role": "system", "content": normalise_text(src["context"])}
        assert row["prompt"][-1]["role"] == "user"
        assert all(a["role"] != b["role"] for a, b in zip(row["prompt"][1:], row["prompt"][2:]))
        assert row["completion"] == [{"role": "assistant", "content": normalise_text(src["system_output"])}]
        assert orjson.loads(row["meta"]) == {"system_id": src["system_id"]}
    # 60 contexts x 6 systems: the six responses to one context share one prompt.
    assert sorted(Counter(r["prompt_id"] for r in rows).values()) == [6] * 60


def test_context_can_stay_out_of_the_prompt():
    rows = _rows(context_as="meta")
    source = json.loads(TC.read_text())
    assert all(r["prompt"][0]["role"] != "system" for r in rows)
    assert orjson.loads(rows[0]["meta"])["context"] == source[0]["context"]


def test_history_as_one_text_message():
    source = json.loads(TC.read_text())
    rows = _rows(history="text")
    assert all([m["role"] for m in r["prompt"]] == ["system", "user"] for r in rows)
    assert [r["prompt"][1]["content"] for r in rows] == [normalise_text(s["source"]) for s in source]
    # Same ratings either way; the ids differ exactly where the history has more than one turn.
    turns = _rows()
    assert [r["ratings"] for r in rows] == [r["ratings"] for r in turns]
    assert [a["record_id"] != b["record_id"] for a, b in zip(rows, turns)] == [len(b["prompt"]) > 2 for b in turns]


def test_custom_scales_and_attribute_subset():
    rows = _rows(scales={"overall": (0, 10)}, attributes=["overall"])
    assert all(
        [(r["attribute"], r["scale_min"], r["scale_max"]) for r in row["ratings"]] == [("overall", 0.0, 10.0)]
        for row in rows
    )


def test_helpsteer_flat_columns():
    rec = {
        "prompt": "Summarise the text.",
        "response": "It is short.",
        "helpfulness": 3,
        "correctness": 4,
        "coherence": 4,
        "complexity": 1,
        "verbosity": 0,
        "split": "train",
    }
    ((shape, row),) = get_adapter("ratings").adapt(rec)
    assert shape == "ratings"
    assert {r["attribute"]: (r["value"], r["scale_min"], r["scale_max"]) for r in row["ratings"]} == {
        a: (float(rec[a]), 0.0, 4.0) for a in ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
    }
    assert orjson.loads(row["meta"]) == {"split": "train"}


def reason(obj, **options) -> str:
    with pytest.raises(AdaptError) as e:
        get_adapter("ratings", **options).adapt(obj)
    return e.value.reason


TC_OK = {
    "source": "hi there \n how are you ? \n\n",
    "context": "fact",
    "system_output": "fine",
    "scores": {"overall": 3, "groundedness": 1},
}


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"scores": {"overall": 7}}, "out_of_range"),
        ({"scores": {"overall": "good"}}, "wrong_type"),
        ({"scores": {"overall": True}}, "wrong_type"),
        ({"scores": {}}, "missing_field"),
        ({"scores": [1, 2]}, "wrong_type"),
        ({"scores": None}, "missing_field"),
        ({"system_output": "  "}, "empty_text"),
        ({"system_output": 5}, "wrong_type"),
        ({"source": "\n\n"}, "empty_text"),
        ({"context": 42}, "wrong_type"),
    ],
)
def test_bad_topical_chat_records(change, expected):
    assert reason({**TC_OK, **change}) == expected


def test_topical_chat_roles_count_back_from_the_end():
    ((_, row),) = get_adapter("ratings").adapt(TC_OK)
    assert [m["role"] for m in row["prompt"]] == ["system", "assistant", "user"]


def test_bad_helpsteer_records():
    ok = {
        "prompt": "p",
        "response": "r",
        "helpfulness": 3,
        "correctness": 4,
        "coherence": 4,
        "complexity": 1,
        "verbosity": 0,
    }
    assert reason({**ok, "verbosity": 5}, layout="helpsteer") == "out_of_range"
    assert reason({k: v for k, v in ok.items() if k != "correctness"}, layout="helpsteer") == "missing_field"
    assert reason({**ok, "response": ""}, layout="helpsteer") == "empty_text"


def test_bad_options_are_value_errors():
    with pytest.raises(ValueError, match="layout"):
        get_adapter("ratings", layout="nope")
    with pytest.raises(ValueError, match="context_as"):
        get_adapter("ratings", context_as="prompt")
    with pytest.raises(ValueError, match="history"):
        get_adapter("ratings", history="lines")
