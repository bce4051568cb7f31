"""sharegpt adapter on LLaMA-Factory's real DPO and KTO demo files, plus malformed records."""

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

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
DPO = DATA / "llamafactory_dpo_en_demo" / "dpo_en_demo.json"
KTO = DATA / "llamafactory_kto_en_demo" / "kto_en_demo.json"


def _ingest(path: Path):
    return adapt_records(
        read_all(str(path)), get_adapter("sharegpt"), run_id="r", source_file=str(path), format_name="sharegpt"
    )


def test_dpo_file_gives_one_pair_per_record():
    source = json.loads(DPO.read_text())
    res = _ingest(DPO)
    assert not res.rejected.num_rows and set(res.tables) == {"pairwise"}
    rows = res.tables["pairwise"].to_pylist()
    assert len(rows) == len(source) == 300
    for row, src in zip(rows, source):
        roles = {"human": "user", "gpt": "assistant", "system": "system"}
        assert [m["role"] for m in row["prompt"]] == [roles[m["from"]] for m in src["conversations"]]
        assert row["prompt"][-1]["role"] == "user"
        assert row["chosen"] == [{"role": "assistant", "content": normalise_text(src["chosen"]["value"])}]
        assert row["rejected"] == [{"role": "assistant", "content": normalise_text(src["rejected"]["value"])}]
    # The context-length histogram of SOURCE.md, recomputed from the rows.
    assert Counter(len(r["prompt"]) for r in rows) == Counter(len(s["conversations"]) for s in source)
    assert (
        sum(r["prompt"][0]["role"] == "system" for r in rows)
        == sum(s["conversations"][0]["from"] == "system" for s in source)
        > 0
    )


def test_kto_file_is_150_desirable_150_undesirable():
    source = json.loads(KTO.read_text())
    res = _ingest(KTO)
    assert not res.rejected.num_rows and set(res.tables) == {"binary"}
    rows = res.tables["binary"].to_pylist()
    assert Counter(r["label"] for r in rows) == Counter(s["label"] for s in source) == {True: 150, False: 150}
    for row, src in zip(rows, source):
        assert row["completion"] == [{"role": "assistant", "content": normalise_text(src["messages"][-1]["content"])}]
        assert len(row["prompt"]) == len(src["messages"]) - 1 and row["prompt"][-1]["role"] == "user"


def test_record_ids_are_stable():
    a = _ingest(DPO).tables["pairwise"].column("record_id").to_pylist()
    assert a == _ingest(DPO).tables["pairwise"].column("record_id").to_pylist()


def adapt(obj):
    return get_adapter("sharegpt").adapt(obj)


H = {"from": "human", "value": "What is 2+2?"}
G = {"from": "gpt", "value": "4"}


def test_tool_roles_map_and_are_remembered_in_meta():
    ((_, row),) = adapt(
        {
            "conversations": [
                H,
                {"from": "function_call", "value": '{"name": "calc"}'},
                {"from": "observation", "value": "4"},
            ],
            "chosen": G,
            "rejected": {"from": "gpt", "value": "5"},
            "tools": "[]",
        }
    )
    assert [m["role"] for m in row["prompt"]] == ["user", "assistant", "user"]
    meta = orjson.loads(row["meta"])
    assert meta == {"tools": "[]", "source_roles": ["human", "function_call", "observation", "gpt", "gpt"]}


def test_top_level_system_and_kto_tag():
    ((shape, row),) = adapt(
        {
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
            "kto_tag": False,
        }
    )
    assert shape == "binary" and row["label"] is False
    assert row["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]


def reason(obj) -> str:
    with pytest.raises(AdaptError) as e:
        adapt(obj)
    return e.value.reason


@pytest.mark.parametrize(
    "obj,expected",
    [
        ({"chosen": G, "rejected": G}, "missing_field"),
        ({"conversations": [H], "chosen": G}, "missing_field"),
        ({"conversations": [H]}, "missing_field"),
        ({"conversations": "hi", "chosen": G, "rejected": G}, "wrong_type"),
        ({"conversations": [H], "chosen": 5, "rejected": G}, "wrong_type"),
        ({"conversations": [H], "chosen": {"from": "gpt", "value": " "}, "rejected": G}, "empty_text"),
        ({"conversations": [{"from": "human", "value": ""}], "chosen": G, "rejected": G}, "empty_text"),
        ({"conversations": [{"from": "bard", "value": "hi"}], "chosen": G, "rejected": G}, "unknown_role"),
        ({"conversations": [H], "chosen": {"from": "human", "value": "x"}, "rejected": G}, "role_order"),
        ({"conversations": [H, G], "chosen": G, "rejected": G}, "role_order"),
        ({"conversations": [H], "chosen": {"value": "x"}, "rejected": G}, "missing_field"),
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}], "label": "yes"},
            "unknown_label",
        ),
        ({"messages": [{"role": "user", "content": "hi"}], "label": True}, "role_order"),
        ({"messages": [{"role": "assistant", "content": "x"}], "label": True}, "role_order"),
        ({"system": 3, "conversations": [H], "chosen": G, "rejected": G}, "wrong_type"),
    ],
)
def test_bad_records(obj, expected):
    assert reason(obj) == expected


def test_unknown_role_names_the_role():
    with pytest.raises(AdaptError, match="'bard'"):
        adapt({"conversations": [{"from": "bard", "value": "hi"}], "chosen": G, "rejected": G})
