"""hh-rlhf adapter on the real harmless-base test split, plus malformed dialogues."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import orjson
import pytest

from schemas.adapters import AdaptError, get_adapter
from schemas.ids import normalise_text
from schemas.ingest import adapt_records
from schemas.readers import read_all

HH = Path(__file__).resolve().parents[2] / "examples" / "data" / "hh_rlhf_harmless_base" / "test.jsonl.gz"


def _ingest():
    return adapt_records(
        read_all(str(HH)), get_adapter("hh-rlhf"), run_id="r", source_file=str(HH), format_name="hh-rlhf"
    )


def _expected_outcomes() -> Counter:
    """What each source line should become, worked out with rpartition instead of the adapter's parser."""
    out = Counter()
    with gzip.open(HH, "rt", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            c_ctx, _, c_final = rec["chosen"].rpartition("\n\nAssistant:")
            r_ctx, _, r_final = rec["rejected"].rpartition("\n\nAssistant:")
            if c_ctx != r_ctx:
                out["prompt_mismatch"] += 1
            elif not c_final.strip() or not r_final.strip():
                out["empty_text"] += 1
            else:
                out["row"] += 1
    return out


def test_real_file_counts_and_reasons(adapt_file):
    res, counts = adapt_file(HH, "hh-rlhf", chunk_rows=500)
    expected = _expected_outcomes()
    assert res.records_read == counts.records_read == sum(expected.values()) == 2312
    assert res.tables["pairwise"].num_rows == counts.rows_kept == expected["row"]
    assert dict(Counter(res.rejected.column("reason").to_pylist())) == {k: v for k, v in expected.items() if k != "row"}
    assert counts.reasons == Counter(res.rejected.column("reason").to_pylist())
    # The source's own counts: every record is a kept row or a rejected one.
    assert counts.rows_in == counts.rows_kept + counts.rows_rejected == 2312 and counts.rows_duplicate == 0
    assert set(res.rejected.column("step").to_pylist()) == {"adapt"}
    assert (
        res.tables["pairwise"].column("record_id").to_pylist()
        == _ingest().tables["pairwise"].column("record_id").to_pylist()
    )  # chunking changes nothing


def test_real_file_row_semantics():
    rows = _ingest().tables["pairwise"].to_pylist()
    with gzip.open(HH, "rt", encoding="utf-8") as f:
        source = [json.loads(line) for line in f]
    for row in rows:
        # Prompt roles follow the source's turn markers (found here with a regex, not the adapter's split).
        context = source[row["source_row"]]["chosen"].rpartition("\n\nAssistant:")[0]
        markers = re.findall(r"\n\n(Human|Assistant):", context)
        assert [m["role"] for m in row["prompt"]] == [{"Human": "user", "Assistant": "assistant"}[x] for x in markers]
        assert row["prompt"][0]["role"] == "user" and row["prompt"][-1]["role"] == "user"
        assert [m["role"] for m in row["chosen"]] == ["assistant"]
        assert [m["role"] for m in row["rejected"]] == ["assistant"]
        assert all(m["content"] for m in row["prompt"] + row["chosen"] + row["rejected"])
        assert row["label"] == "chosen_better" and row["origin"] == "human" and row["meta"] is None
    # First record of the file (shown in SOURCE.md): three human turns, the final reply is the tail.
    assert [m["content"] for m in rows[0]["prompt"]][::2] == [
        "what are some pranks with a pen i can do?",
        "yep",
        "okay some of these do not have anything to do with pens",
    ]
    assert rows[0]["chosen"][0]["content"] == normalise_text(source[0]["chosen"].rsplit("\n\nAssistant:", 1)[1])
    assert rows[0]["source_row"] == 0


def test_consecutive_assistant_turns_in_the_source_are_kept_not_merged():
    # A few dialogues have "\n\nAssistant:" twice in a row (the model ran on). The adapter stays
    # faithful; validation's alternation rule decides about them.
    rows = _ingest().tables["pairwise"].to_pylist()
    repeated = [
        r["source_row"] for r in rows if any(a["role"] == b["role"] for a, b in zip(r["prompt"], r["prompt"][1:]))
    ]
    with gzip.open(HH, "rt", encoding="utf-8") as f:
        source = [json.loads(line) for line in f]
    kept = {r["source_row"] for r in rows}
    expected = [
        i
        for i, rec in enumerate(source)
        if i in kept
        and re.search(
            r"\n\nAssistant:(?:(?!\n\nHuman:).)*\n\nAssistant:", rec["chosen"].rpartition("\n\nAssistant:")[0], re.S
        )
    ]
    assert repeated == expected and repeated


def test_record_ids_are_stable_across_reads():
    a = _ingest().tables["pairwise"].column("record_id").to_pylist()
    b = _ingest().tables["pairwise"].column("record_id").to_pylist()
    assert a == b
    assert len(set(a)) > 0.99 * len(a)


def adapt(obj):
    return get_adapter("hh-rlhf").adapt(obj)


def reason(obj) -> str:
    with pytest.raises(AdaptError) as e:
        adapt(obj)
    return e.value.reason


def test_missing_and_wrong_type_fields():
    assert reason({"chosen": "\n\nHuman: hi\n\nAssistant: yo"}) == "missing_field"
    assert reason({"chosen": ["x"], "rejected": "\n\nHuman: hi\n\nAssistant: yo"}) == "wrong_type"
    assert reason(["not", "an", "object"]) == "wrong_type"


def test_dialogue_shapes_that_are_rejected():
    assert reason({"chosen": "\n\nHuman: hi", "rejected": "\n\nHuman: hi\n\nAssistant: a"}) == "no_assistant_turn"
    assert (
        reason({"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": "\n\nHuman: bye\n\nAssistant: b"})
        == "prompt_mismatch"
    )
    assert (
        reason({"chosen": "\n\nHuman: hi\n\nAssistant:", "rejected": "\n\nHuman: hi\n\nAssistant: b"}) == "empty_text"
    )
    assert (
        reason({"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": "\n\nHuman: hi\n\nAssistant:   \n"})
        == "empty_text"
    )
    assert reason({"chosen": "\n\nHuman: \n\nAssistant: a", "rejected": "\n\nHuman: \n\nAssistant: b"}) == "empty_text"
    assert (
        reason({"chosen": "Preamble\n\nHuman: hi\n\nAssistant: a", "rejected": "Preamble\n\nHuman: hi\n\nAssistant: b"})
        == "bad_dialogue"
    )
    # Two assistant turns in a row before the judged one: the judged turn answers no one.
    two = "\n\nHuman: hi\n\nAssistant: a\n\nAssistant: "
    assert reason({"chosen": two + "x", "rejected": two + "y"}) == "role_order"
    # A Human turn after the last Assistant turn: the dialogue does not end on a judged reply.
    assert (
        reason({"chosen": "\n\nHuman: hi\n\nAssistant: a\n\nHuman: more", "rejected": "\n\nHuman: hi\n\nAssistant: b"})
        == "role_order"
    )


def test_odd_markers_and_whitespace():
    # Missing leading blank line, inline "Human:" inside a reply, whitespace-only prompt differences.
    ((shape, row),) = adapt(
        {"chosen": "Human: hi\n\nAssistant: sure. Human: then?", "rejected": "\n\nHuman: hi  \n\nAssistant: no"}
    )
    assert shape == "pairwise"
    assert row["prompt"] == [{"role": "user", "content": "hi"}]
    assert row["chosen"] == [{"role": "assistant", "content": "sure. Human: then?"}]
    assert row["rejected"] == [{"role": "assistant", "content": "no"}]


def test_multi_turn_prompt_and_meta():
    d = "\n\nHuman: q1\n\nAssistant: a1\n\nHuman: q2\n\nAssistant: "
    ((_, row),) = adapt({"chosen": d + "good", "rejected": d + "bad", "id": 7})
    assert row["prompt"] == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    ]
    assert orjson.loads(row["meta"]) == {"id": 7}


def test_chosen_equal_to_rejected_is_built_for_validation_to_reject():
    d = "\n\nHuman: hi\n\nAssistant: same"
    ((_, row),) = adapt({"chosen": d, "rejected": d})
    assert row["chosen_id"] == row["rejected_id"]
