"""TRL adapter. No TRL file ships in examples/data, so the real LLaMA-Factory files are rewritten
into each TRL layout and must give the same rows (record_ids) as the sharegpt adapter."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from schemas.adapters import AdaptError, get_adapter
from schemas.readers import read_all

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
DPO = DATA / "llamafactory_dpo_en_demo" / "dpo_en_demo.json"
KTO = DATA / "llamafactory_kto_en_demo" / "kto_en_demo.json"
ROLE = {"human": "user", "gpt": "assistant", "system": "system"}


def _msgs(items):
    return [{"role": ROLE[m["from"]], "content": m["value"]} for m in items]


def _rows(adapter, objs):
    return [row for obj in objs for _, row in adapter.adapt(obj)]


def _dpo():
    return [r.obj for r in read_all(str(DPO))]


def test_explicit_conversational_matches_sharegpt_on_real_dpo_file():
    objs = _dpo()
    trl = [
        {"prompt": _msgs(o["conversations"]), "chosen": _msgs([o["chosen"]]), "rejected": _msgs([o["rejected"]])}
        for o in objs
    ]
    got = _rows(get_adapter("trl"), trl)
    want = _rows(get_adapter("sharegpt"), objs)
    assert len(got) == len(objs) == 300
    assert [r["record_id"] for r in got] == [r["record_id"] for r in want]
    assert all(orjson.loads(r["meta"]) == {"trl_format": "conversational"} for r in got)


def test_implicit_prompt_is_split_at_the_longest_common_prefix():
    objs = _dpo()
    trl = [
        {"chosen": _msgs(o["conversations"] + [o["chosen"]]), "rejected": _msgs(o["conversations"] + [o["rejected"]])}
        for o in objs
    ]
    got = _rows(get_adapter("trl"), trl)
    want = _rows(get_adapter("sharegpt"), objs)
    assert [r["record_id"] for r in got] == [r["record_id"] for r in want]
    assert [len(r["prompt"]) for r in got] == [len(o["conversations"]) for o in objs]
    assert orjson.loads(got[0]["meta"])["implicit_prompt"] is True


def test_standard_strings_become_single_messages():
    objs = _dpo()
    single = [o for o in objs if len(o["conversations"]) == 1]
    trl = [
        {"prompt": o["conversations"][0]["value"], "chosen": o["chosen"]["value"], "rejected": o["rejected"]["value"]}
        for o in single
    ]
    got = _rows(get_adapter("trl"), trl)
    want = _rows(get_adapter("sharegpt"), single)
    assert len(got) == len(single) > 0
    assert [r["record_id"] for r in got] == [r["record_id"] for r in want]
    assert orjson.loads(got[0]["meta"]) == {"trl_format": "standard"}


def test_unpaired_kto_matches_sharegpt_on_real_kto_file():
    objs = [r.obj for r in read_all(str(KTO))]
    explicit = [{"prompt": o["messages"][:-1], "completion": o["messages"][-1:], "label": o["label"]} for o in objs]
    implicit = [{"completion": o["messages"], "label": o["label"]} for o in objs]
    want = [r["record_id"] for r in _rows(get_adapter("sharegpt"), objs)]
    a, b = _rows(get_adapter("trl"), explicit), _rows(get_adapter("trl"), implicit)
    assert [r["record_id"] for r in a] == want == [r["record_id"] for r in b]
    assert sum(r["label"] for r in a) == sum(o["label"] for o in objs)


def test_scores_give_the_margin_and_stay_in_meta():
    ((_, row),) = get_adapter("trl").adapt(
        {"prompt": "2+2?", "chosen": "4", "rejected": "5", "score_chosen": 9.0, "score_rejected": 2.5}
    )
    assert row["margin"] == 6.5
    assert orjson.loads(row["meta"])["score_chosen"] == 9.0
    # Scores that disagree with the label keep their sign: a signal for curation, not a swap.
    ((_, row),) = get_adapter("trl").adapt(
        {"prompt": "2+2?", "chosen": "4", "rejected": "5", "score_chosen": 1, "score_rejected": 3}
    )
    assert row["margin"] == -2.0 and row["chosen"][0]["content"] == "4"
    ((_, row),) = get_adapter("trl").adapt({"prompt": "q", "chosen": "a", "rejected": "b", "margin": 0.25})
    assert row["margin"] == 0.25


def test_implicit_standard_strings_keep_an_empty_prompt():
    ((_, row),) = get_adapter("trl").adapt({"chosen": "The sky is blue.", "rejected": "The sky is green."})
    assert row["prompt"] == [] and row["chosen"][0]["content"] == "The sky is blue."


def test_multimodal_text_parts_are_joined():
    ((_, row),) = get_adapter("trl").adapt(
        {
            "prompt": [
                {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}
            ],
            "chosen": [{"role": "assistant", "content": "hello"}],
            "rejected": [{"role": "assistant", "content": "go"}],
        }
    )
    assert row["prompt"][0]["content"] == "Hi there"


def reason(obj) -> str:
    with pytest.raises(AdaptError) as e:
        get_adapter("trl").adapt(obj)
    return e.value.reason


U = [{"role": "user", "content": "q"}]


@pytest.mark.parametrize(
    "obj,expected",
    [
        ({"prompt": "q", "chosen": "a"}, "missing_field"),
        ({"text": "just text"}, "missing_field"),
        ({"prompt": "q", "chosen": 3, "rejected": "b"}, "wrong_type"),
        ({"prompt": "q", "chosen": "", "rejected": "b"}, "empty_text"),
        ({"prompt": "  ", "chosen": "a", "rejected": "b"}, "empty_text"),
        ({"prompt": U, "chosen": [{"role": "tool", "content": "x"}], "rejected": "b"}, "unknown_role"),
        ({"prompt": U, "chosen": [{"content": "x"}], "rejected": "b"}, "missing_field"),
        ({"prompt": U + [{"role": "assistant", "content": "x"}], "chosen": "a", "rejected": "b"}, "role_order"),
        ({"prompt": U, "chosen": [{"role": "user", "content": "a"}], "rejected": "b"}, "role_order"),
        ({"chosen": U + [{"role": "assistant", "content": "a"}], "rejected": "b"}, "wrong_type"),
        (
            {
                "chosen": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a"}],
                "rejected": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a"}],
            },
            "prompt_mismatch",
        ),
        ({"prompt": "q", "chosen": "a", "rejected": "b", "score_chosen": "high", "score_rejected": 1}, "wrong_type"),
        ({"prompt": "q", "chosen": "a", "rejected": "b", "score_chosen": 1}, "missing_field"),
        ({"prompt": "q", "completion": "a"}, "missing_field"),
        ({"prompt": "q", "completion": "a", "label": "yes"}, "unknown_label"),
        ({"prompt": "q", "completion": "a", "label": 1}, "unknown_label"),
        ({"completion": U, "label": True}, "role_order"),
        ("not an object", "wrong_type"),
    ],
)
def test_bad_records(obj, expected):
    assert reason(obj) == expected
