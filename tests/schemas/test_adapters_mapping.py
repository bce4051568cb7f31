"""The declarative mapping adapter: the example mappings on real files, each label convention,
field paths, and mapping files that are wrong (MappingError at get_adapter time)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import orjson
import pytest
import yaml

from schemas.adapters import AdaptError, MappingError, get_adapter
from schemas.ids import normalise_text
from schemas.ingest import adapt_records
from schemas.readers import read_all

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples" / "data"
MAPPINGS = ROOT / "examples" / "mappings"
PANDA = DATA / "pandalm_testset" / "testset-v1.json"
KTO = DATA / "llamafactory_kto_en_demo" / "kto_en_demo.json"
TC = DATA / "topical_chat_usr_ratings" / "topical_chat.json"


def _ingest(adapter, path: Path):
    return adapt_records(read_all(str(path)), adapter, run_id="r", source_file=str(path), format_name=adapter.name)


# -- the shipped example mappings on real data ---------------------------------------------------


def test_pandalm_mapping_reproduces_the_pandalm_adapter():
    via_mapping = _ingest(get_adapter("mapping", str(MAPPINGS / "pandalm_testset.yaml")), PANDA)
    built_in = _ingest(get_adapter("pandalm"), PANDA)
    a, b = via_mapping.tables["pairwise"].to_pylist(), built_in.tables["pairwise"].to_pylist()
    assert len(a) == len(b) > 2000
    assert [r["record_id"] for r in a] == [r["record_id"] for r in b]
    assert [r["meta"] for r in a] == [r["meta"] for r in b]
    cols = ["source_row", "reason"]
    assert via_mapping.rejected.select(cols).to_pylist() == built_in.rejected.select(cols).to_pylist()


def test_kto_mapping_reproduces_the_sharegpt_adapter():
    a = _ingest(get_adapter("mapping", str(MAPPINGS / "llamafactory_kto.yaml")), KTO).tables["binary"]
    b = _ingest(get_adapter("sharegpt"), KTO).tables["binary"]
    assert a.num_rows == b.num_rows == 300
    assert a.column("record_id").to_pylist() == b.column("record_id").to_pylist()


def test_csv_score_columns_pick_the_higher_score():
    res = _ingest(
        get_adapter("mapping", str(MAPPINGS / "topical_chat_scored_pairs.yaml")),
        MAPPINGS / "topical_chat_scored_pairs.csv",
    )
    assert not res.rejected.num_rows
    rows = res.tables["pairwise"].to_pylist()
    # Expected outcome from the original JSON (the CSV pairs Original Ground Truth with Argmax Decoding).
    by_context: dict[str, dict] = {}
    for rec in json.loads(TC.read_text()):
        by_context.setdefault(rec["source"], {})[rec["system_id"]] = rec
    assert len(rows) == len(by_context) == 60
    for row, systems in zip(rows, by_context.values()):
        a, b = systems["Original Ground Truth"], systems["Argmax Decoding"]
        sa, sb = a["scores"]["overall"], b["scores"]["overall"]
        better, worse = (b, a) if sb > sa else (a, b)
        assert row["label"] == ("tie" if sa == sb else "chosen_better")
        assert row["chosen"][0]["content"] == normalise_text(better["system_output"])
        assert row["rejected"][0]["content"] == normalise_text(worse["system_output"])
        assert row["margin"] == pytest.approx(abs(sa - sb))
        assert row["prompt"][0] == {"role": "system", "content": normalise_text(a["context"])}
        assert row["prompt"][1]["content"] == normalise_text(a["source"])  # multi-line CSV cells survive
        assert orjson.loads(row["meta"])["system_a"] == "Original Ground Truth"


def test_ratings_mapping_on_topical_chat():
    adapter = get_adapter(
        "mapping",
        {
            "shape": "ratings",
            "prompt": "source",
            "completion": "system_output",
            "scale": [1, 3],
            "ratings": {"overall": {"field": "scores.overall", "scale": [1, 5]}, "naturalness": "scores.naturalness"},
            "meta": ["system_id"],
        },
    )
    rows = _ingest(adapter, TC).tables["ratings"].to_pylist()
    source = json.loads(TC.read_text())
    assert len(rows) == 360
    for row, src in zip(rows, source):
        assert {r["attribute"]: (r["value"], r["scale_min"], r["scale_max"]) for r in row["ratings"]} == {
            "overall": (src["scores"]["overall"], 1.0, 5.0),
            "naturalness": (src["scores"]["naturalness"], 1.0, 3.0),
        }
        assert orjson.loads(row["meta"]) == {"system_id": src["system_id"]}


# -- label conventions ---------------------------------------------------------------------------

PAIR = {"q": "Which is better?", "a": "first answer", "b": "second answer"}


def _pair(label: dict, **record):
    adapter = get_adapter("mapping", {"shape": "pairwise", "prompt": "q", "first": "a", "second": "b", "label": label})
    return adapter.adapt({**PAIR, **record})


def _outcome(items):
    ((_, row),) = items
    return row["chosen"][0]["content"], row["label"], orjson.loads(row["meta"])["chosen_position"]


@pytest.mark.parametrize(
    "label,value,expected",
    [
        ({"field": "pref", "convention": "one_two"}, 1, ("first answer", "chosen_better", 1)),
        ({"field": "pref", "convention": "one_two"}, "2", ("second answer", "chosen_better", 2)),
        ({"field": "pref", "convention": "one_two"}, 2.0, ("second answer", "chosen_better", 2)),
        ({"field": "pref", "convention": "zero_tie"}, 0, ("first answer", "tie", 1)),
        ({"field": "pref", "convention": "boolean"}, False, ("second answer", "chosen_better", 2)),
        (
            {"field": "pref", "values": {"A": "first", "B": "second", "tie": "tie"}},
            "B",
            ("second answer", "chosen_better", 2),
        ),
        ({"field": "pref", "values": {"A": "first", "B": "second", "tie": "tie"}}, " tie ", ("first answer", "tie", 1)),
    ],
)
def test_pairwise_label_conventions(label, value, expected):
    assert _outcome(_pair(label, pref=value)) == expected


@pytest.mark.parametrize(
    "label,value",
    [
        ({"field": "pref", "convention": "one_two"}, 0),
        ({"field": "pref", "convention": "one_two"}, True),  # True is not 1
        ({"field": "pref", "convention": "zero_tie"}, 3),
        ({"field": "pref", "convention": "boolean"}, 1),
        ({"field": "pref", "values": {"A": "first", "B": "second"}}, "a"),
    ],
)
def test_unknown_label_values_are_rejected(label, value):
    with pytest.raises(AdaptError) as e:
        _pair(label, pref=value)
    assert e.value.reason == "unknown_label"


def test_score_and_rank_columns():
    label = {"convention": "score_columns", "fields": ["sa", "sb"]}
    ((_, row),) = _pair(label, sa=2.0, sb=4.5)
    assert (row["chosen"][0]["content"], row["margin"]) == ("second answer", 2.5)
    ((_, row),) = _pair(label, sa=3, sb=3)
    assert (row["label"], row["margin"]) == ("tie", 0.0)
    with pytest.raises(AdaptError) as e:
        _pair(label, sa="high", sb=1)
    assert e.value.reason == "wrong_type"
    ((_, row),) = _pair({"convention": "rank0_best", "fields": ["ra", "rb"]}, ra=0, rb=1)
    assert row["chosen"][0]["content"] == "first answer" and row["margin"] is None


def test_annotators_give_one_row_each_and_keep_partial_success():
    adapter = get_adapter(
        "mapping",
        {
            "shape": "pairwise",
            "prompt": "q",
            "first": "a",
            "second": "b",
            "label": {"convention": "one_two"},
            "annotators": [{"field": "x", "id": "ann-x"}, "y", {"field": "z", "id": "ann-z"}],
        },
    )
    items = adapter.adapt({**PAIR, "x": 1, "y": 9, "z": 2})
    assert [i.reason if isinstance(i, AdaptError) else i[1]["annotator_id"] for i in items] == [
        "ann-x",
        "unknown_label",
        "ann-z",
    ]
    items = adapter.adapt({**PAIR, "x": 1, "z": 2})  # a missing column costs its row only
    assert isinstance(items[1], AdaptError) and items[1].reason == "missing_field"


def test_explicit_chosen_rejected_with_annotator_field_and_margin():
    adapter = get_adapter(
        "mapping",
        {
            "shape": "pairwise",
            "prompt": "q",
            "chosen": "a",
            "rejected": "b",
            "annotator": "who",
            "margin": "m",
            "origin": "ai_judge",
            "meta": "none",
        },
    )
    ((_, row),) = adapter.adapt({**PAIR, "who": 17, "m": 0.5, "other": 1})
    assert (row["annotator_id"], row["margin"], row["origin"], row["meta"]) == ("17", 0.5, "ai_judge", None)
    assert row["label"] == "chosen_better"


def test_binary_values_map_and_score():
    adapter = get_adapter(
        "mapping",
        {
            "shape": "binary",
            "prompt": "q",
            "completion": "a",
            "score": "s",
            "label": {"field": "thumb", "values": {"up": True, "down": "undesirable"}},
        },
    )
    ((_, row),) = adapter.adapt({**PAIR, "thumb": "down", "s": -1})
    assert (row["label"], row["score"]) == (False, -1.0)
    with pytest.raises(AdaptError, match="unknown_label"):
        adapter.adapt({**PAIR, "thumb": "meh", "s": 0})


def test_listwise_from_a_list_field_with_one_based_ranks():
    adapter = get_adapter(
        "mapping",
        {
            "shape": "listwise",
            "prompt": "q",
            "completions": {
                "field": "outputs",
                "role_key": "speaker",
                "content_key": "text",
                "roles": {"bot": "assistant"},
            },
            "ranks": {"field": "ranking", "convention": "rank1_best"},
            "scores": "scores",
        },
    )
    outputs = [{"speaker": "bot", "text": t} for t in ("x", "y", "z")]
    ((_, row),) = adapter.adapt(
        {"q": "Rank these", "outputs": outputs, "ranking": [2, 1, 2], "scores": [0.5, 0.9, 0.5]}
    )
    assert row["ranks"] == [1, 0, 1] and row["scores"] == [0.5, 0.9, 0.5]
    assert [c[0]["content"] for c in row["completions"]] == ["x", "y", "z"]
    for bad, reason in [
        ({"ranking": [1, 2]}, "length_mismatch"),
        ({"ranking": [0, 1, 2]}, "out_of_range"),
        ({"ranking": [1, "b", 2]}, "wrong_type"),
        ({"outputs": outputs[:1], "ranking": [1], "scores": [1.0]}, "too_few_completions"),
    ]:
        with pytest.raises(AdaptError) as e:
            adapter.adapt(
                {"q": "Rank these", "outputs": outputs, "ranking": [2, 1, 2], "scores": [0.5, 0.9, 0.5], **bad}
            )
        assert e.value.reason == reason


def test_listwise_from_columns():
    adapter = get_adapter(
        "mapping",
        {"shape": "listwise", "prompt": "q", "completions": ["a", "b", "c"], "scores": {"fields": ["sa", "sb", "sc"]}},
    )
    ((_, row),) = adapter.adapt({"q": "?", "a": "1", "b": "2", "c": "3", "sa": 1, "sb": 3, "sc": 2})
    assert row["scores"] == [1.0, 3.0, 2.0] and row["ranks"] is None


# -- field paths and message lists -----------------------------------------------------------------


def test_paths_with_indexes_slices_and_dotted_column_names():
    adapter = get_adapter(
        "mapping",
        {
            "shape": "binary",
            "prompt": {"field": "messages.:-1", "roles": {"bot": "assistant"}},
            "system": "meta.system",
            "completion": "messages.-1.content",
            "label": {"field": "score.ok", "convention": "boolean"},
        },
    )
    rec = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "bot", "content": "yo"},
            {"role": "user", "content": "and?"},
            {"role": "bot", "content": "done"},
        ],
        "meta": {"system": "Be kind."},
        "score.ok": "true",
    }
    ((_, row),) = adapter.adapt(rec)
    assert [m["role"] for m in row["prompt"]] == ["system", "user", "assistant", "user"]
    assert row["completion"] == [{"role": "assistant", "content": "done"}] and row["label"] is True
    with pytest.raises(AdaptError) as e:
        adapter.adapt({**rec, "messages": "flat"})
    assert e.value.reason == "wrong_type"
    with pytest.raises(AdaptError) as e:
        adapter.adapt({k: v for k, v in rec.items() if k != "meta"})
    assert e.value.reason == "missing_field"


def test_index_out_of_range_and_unknown_role():
    adapter = get_adapter("mapping", {"shape": "binary", "prompt": "turns.0", "completion": "turns.5", "label": "ok"})
    with pytest.raises(AdaptError, match="out of range"):
        adapter.adapt({"turns": ["q", "a"], "ok": True})
    adapter = get_adapter("mapping", {"shape": "binary", "prompt": "msgs", "completion": "c", "label": "ok"})
    with pytest.raises(AdaptError) as e:
        adapter.adapt({"msgs": [{"role": "narrator", "content": "x"}], "c": "a", "ok": True})
    assert e.value.reason == "unknown_role"


def test_template_with_numbers_and_literal_braces():
    adapter = get_adapter(
        "mapping",
        {"shape": "pairwise", "prompt": {"template": "Task {id}: {{{text}}}"}, "chosen": "a", "rejected": "b"},
    )
    ((_, row),) = adapter.adapt({"id": 3, "text": "go", "a": "x", "b": "y"})
    assert row["prompt"][0]["content"] == "Task 3: {go}"


def test_empty_and_wrong_texts_are_rejected():
    adapter = get_adapter("mapping", {"shape": "pairwise", "prompt": "q", "chosen": "a", "rejected": "b"})
    for rec, reason in [
        ({"q": "", "a": "x", "b": "y"}, "empty_text"),
        ({"q": "q", "a": " ", "b": "y"}, "empty_text"),
        ({"q": "q", "a": 5, "b": "y"}, "wrong_type"),
        ({"q": "q", "b": "y"}, "missing_field"),
        ("a string", "wrong_type"),
    ]:
        with pytest.raises(AdaptError) as e:
            adapter.adapt(rec)
        assert e.value.reason == reason


# -- mappings that are wrong -----------------------------------------------------------------------

BASE = {
    "shape": "pairwise",
    "prompt": "q",
    "first": "a",
    "second": "b",
    "label": {"field": "p", "convention": "one_two"},
}


@pytest.mark.parametrize(
    "mapping,message",
    [
        ({"prompt": "q"}, "needs 'shape'"),
        ({**BASE, "shape": "triplet"}, "shape 'triplet'"),
        ({**BASE, "colour": "red"}, "unknown key(s) for shape pairwise: colour"),
        ({k: v for k, v in BASE.items() if k != "prompt"}, "needs 'prompt'"),
        ({**BASE, "chosen": "a"}, "either chosen + rejected"),
        ({k: v for k, v in BASE.items() if k != "label"}, "need a 'label'"),
        ({**BASE, "label": {"field": "p", "convention": "one_three"}}, "convention: 'one_three'"),
        ({**BASE, "label": {"field": "p", "convention": "one_two", "values": {"A": "first"}}}, "only with convention"),
        ({**BASE, "label": {"field": "p", "values": {"A": "best"}}}, "maps to 'best'"),
        ({**BASE, "label": {"field": "p", "values": {1: "first", "1": "second"}}}, "listed twice"),
        ({**BASE, "label": {"convention": "score_columns", "field": "s"}}, "fields: [first, second]"),
        ({**BASE, "label": {"convention": "score_columns", "fields": ["a", "b", "c"]}}, "exactly two"),
        ({**BASE, "label": {"convention": "one_two"}}, "missing 'field'"),
        ({**BASE, "prompt": "a..b"}, "empty segment"),
        ({**BASE, "prompt": {"template": "{x"}}, "unbalanced brace"),
        ({**BASE, "prompt": {"template": "no fields"}}, "no {field} placeholder"),
        ({**BASE, "prompt": {"field": "q", "template": "{q}"}}, "exactly one of"),
        ({**BASE, "prompt": {"field": "q", "roles": {"bot": "robot"}}}, "maps to 'robot'"),
        ({**BASE, "prompt": {"field": "q", "role": "narrator"}}, "'narrator' is not one of"),
        ({**BASE, "origin": "crowd"}, "origin 'crowd'"),
        ({**BASE, "annotators": [{"field": "x", "id": "a"}, {"field": "y", "id": "a"}]}, "used twice"),
        ({**BASE, "annotator": "who", "annotators": ["x"]}, "either 'annotator'"),
        ({"shape": "pairwise", "prompt": "q", "chosen": "a", "rejected": "b", "annotators": ["x"]}, "needs a 'label'"),
        (
            {"shape": "binary", "prompt": "q", "completion": "c", "label": {"field": "l", "convention": "one_two"}},
            "for shape binary",
        ),
        ({"shape": "listwise", "prompt": "q", "completions": "c"}, "'ranks' and/or 'scores'"),
        (
            {"shape": "listwise", "prompt": "q", "completions": ["a", "b"], "scores": {"fields": ["x"]}},
            "1 fields for 2",
        ),
        (
            {"shape": "listwise", "prompt": "q", "completions": "c", "ranks": {"field": "r", "convention": "best0"}},
            "ranks.convention",
        ),
        ({"shape": "ratings", "prompt": "q", "completion": "c", "ratings": {"x": "x"}, "scale": [5, 1]}, "below max"),
        ({"shape": "ratings", "prompt": "q", "completion": "c", "ratings": []}, "needs 'ratings'"),
        ({"shape": "ratings", "prompt": "q", "completion": "c", "ratings": {"x": {"column": "x"}}}, "ratings.x"),
    ],
)
def test_bad_mappings_name_the_problem(mapping, message):
    with pytest.raises(MappingError) as e:
        get_adapter("mapping", mapping)
    assert message in str(e.value)
    assert isinstance(e.value, ValueError) and "\n" not in str(e.value)


def test_mapping_files_that_cannot_be_used(tmp_path):
    with pytest.raises(MappingError, match="needs a mapping file"):
        get_adapter("mapping")
    with pytest.raises(MappingError, match="not found"):
        get_adapter("mapping", str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("shape: pairwise\nprompt: [unclosed\n")
    with pytest.raises(MappingError, match="cannot read mapping file"):
        get_adapter("mapping", str(bad))
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(MappingError, match="must hold a YAML mapping"):
        get_adapter("mapping", str(scalar))
    as_json = tmp_path / "m.json"
    as_json.write_text('{\t"shape": "pairwise", "prompt": "q", "chosen": "a", "rejected": "b"}')
    assert get_adapter("mapping", str(as_json)).spec.shape == "pairwise"
    broken_json = tmp_path / "broken.json"
    broken_json.write_text('{"shape": ')
    with pytest.raises(MappingError, match="cannot read mapping file"):
        get_adapter("mapping", str(broken_json))
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("shape: pairwise\nprompt: q\nfirst: a\nsecond: b\n")
    with pytest.raises(MappingError, match=r"wrong\.yaml: first/second need a 'label'"):
        get_adapter("mapping", str(wrong))


def test_every_example_mapping_loads():
    files = sorted(MAPPINGS.glob("*.yaml"))
    assert len(files) >= 3
    for f in files:
        assert get_adapter("mapping", str(f)).spec.shape in ("pairwise", "binary", "listwise", "ratings")


def test_every_complete_example_in_the_docs_loads():
    text = (ROOT / "docs" / "mapping.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "shape:" in b]
    assert len(blocks) >= 6
    for block in blocks:
        get_adapter("mapping", yaml.safe_load(block))
