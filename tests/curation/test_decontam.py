"""Benchmark decontamination: planted benchmark prompts are found, real prompts are not, bad input is one line."""

import gzip
import json
import math
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.benchmarks import DEFAULT_BENCHMARKS, read_benchmark, read_benchmarks
from curation.decontam import DecontamError, NgramIndex, normalised
from curation.decontam_step import DecontamConfig, DecontamStep, load
from schemas.errors import PrefmillError
from schemas.registry import STEPS
from tests.conftest import DATA

_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def _items() -> list[tuple[str, str]]:
    """(benchmark, text) of every bundled benchmark item."""
    return [(b.name, it.text) for b in read_benchmarks(DEFAULT_BENCHMARKS) for it in b.items]


def _hh_dialogues() -> list[list[tuple[str, str]]]:
    out = []
    with gzip.open(DATA / "hh_rlhf_harmless_base" / "test.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            parts = _HH_TURN.split(json.loads(line)["chosen"])
            out.append([(parts[k], parts[k + 1].strip()) for k in range(1, len(parts) - 1, 2)])
    return out


def _rows(prompts: list[list[dict]], chosen: list[list[dict]] | None = None) -> pa.Table:
    n = len(prompts)
    reply = [[{"role": "assistant", "content": "Sure."}]] * n
    conv = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    return pa.table(
        {
            "record_id": [f"r{i}" for i in range(n)],
            "prompt": pa.array(prompts, conv),
            "chosen": pa.array(chosen or reply, conv),
            "rejected": pa.array(reply, conv),
        }
    )


def _user(*texts: str) -> list[dict]:
    roles = ["user", "assistant"]
    return [{"role": roles[k % 2], "content": t} for k, t in enumerate(texts)]


def _run(step: DecontamStep, table: pa.Table):
    return step(table, "pairwise")


@pytest.fixture(scope="module")
def step() -> DecontamStep:
    return DecontamStep(DecontamConfig())


def test_every_planted_benchmark_prompt_is_found_verbatim_and_edited(step):
    items = _items()
    real = [d[0][1] for d in _hh_dialogues()[:50]]
    prompts, expect = [], []
    for k, (_, text) in enumerate(items):
        short = len(normalised([text]).to_pylist()[0].split()) < 8
        variants = [
            text,  # verbatim
            text.upper(),
            re.sub(r"[,.?!;:]", lambda m: {"?": ".", ".": "!"}.get(m.group(), ""), text) + "?",  # punctuation
            "  " + "\n\t ".join(text.split()) + "\n",  # whitespace
        ]
        if not short:  # a short item is only found as a whole message, by design
            sentence = "I found this question online and would like a careful answer."
            variants += [f"{sentence} {text}", f"{text} {sentence}", f"{real[k % len(real)]}\n\n{text}"]
        for v in variants:
            prompts.append(_user(v))
            expect.append(text)
    res = _run(step, _rows(prompts))
    assert res.kept.num_rows == 0 and res.rejected.num_rows == len(prompts)
    text_of = {(b.name, it.item_id): it.text for b in read_benchmarks(DEFAULT_BENCHMARKS) for it in b.items}
    found = res.rejected.select(["reason", "detail"]).to_pylist()
    for planted, row in zip(expect, found):
        d = json.loads(row["detail"])
        assert row["reason"] == f"contaminated:{d['benchmark']}"
        assert d["coverage"] >= 0.5 and d["column"] == "prompt"
        # the item found is the one planted (or the same question in the other benchmark)
        found_text, planted_text = normalised([text_of[d["benchmark"], d["item"]], planted]).to_pylist()
        assert found_text == planted_text
    assert step.counts.rows_in == step.counts.rows_kept + step.counts.rows_rejected


def test_clean_real_prompts_are_not_flagged(step):
    """Every turn of the 2,312 hh-rlhf dialogues plus the oasst and LLaMA-Factory prompts: none shares a word
    8-gram with the bundled benchmarks (measured: 0 of 2,312 rows, 0 of 13,287 messages); bound with margin."""
    dialogues = _hh_dialogues()
    res = _run(step, _rows([[{"role": "user", "content": t} for _, t in d] for d in dialogues]))
    assert res.rejected.num_rows <= 2, res.rejected.column("detail").to_pylist()
    texts = []
    with open(DATA / "oasst_en_100_trees" / "en_100_tree.jsonl", encoding="utf-8") as f:
        stack = [json.loads(line)["prompt"] for line in f]
    while stack:
        m = stack.pop()
        texts.append(m["text"])
        stack += m.get("replies") or []
    dpo = json.loads((DATA / "llamafactory_dpo_en_demo" / "dpo_en_demo.json").read_text(encoding="utf-8"))
    texts += [t["value"] for r in dpo for t in r["conversations"]]
    res = _run(step, _rows([_user(t) for t in texts]))
    assert res.rejected.num_rows <= max(2, len(texts) // 1000)


def test_coverage_is_the_share_of_the_benchmark_items_ngrams():
    item = " ".join(f"w{i}" for i in range(20))  # 13 distinct 8-grams
    ix = NgramIndex.build([item], n=8, threshold=0.5)
    words = item.split()
    half = " ".join(words[:14])  # 7 of 13 n-grams
    less = " ".join(words[:13])  # 6 of 13
    long_text = " ".join(["filler"] * 5000) + " " + item  # coverage of the item, not of the text
    m = ix.match([half, less, long_text, ""])
    assert m.item.tolist() == [0, -1, 0, -1]
    assert m.matched.tolist()[:3] == [7, 0, 13] and m.total[0] == 13
    assert math.isclose(m.coverage[0], 7 / 13) and m.coverage[2] == 1.0
    # repeated n-grams of a text count once
    assert ix.match([" ".join(words[:8]) + " x " + " ".join(words[:8])]).item[0] == -1
    # the threshold is a parameter
    assert NgramIndex.build([item], n=8, threshold=0.4).match([less]).item[0] == 0


def test_short_items_need_an_exact_normalised_match():
    ix = NgramIndex.build(["Can you parallelize it?", "Compose an engaging travel blog post about Hawaii today."], n=8)
    m = ix.match(
        ["can you PARALLELIZE it", " Can you parallelize   it ?!", "Can you parallelize it? Thanks", "parallelize"]
    )
    assert m.item.tolist() == [0, 0, -1, -1]
    assert m.total.tolist() == [0, 0, 0, 0] and m.coverage[0] == 1.0


def test_responses_are_checked_only_when_asked_and_later_turns_count():
    bench, text = _items()[0]
    table = _rows(
        [_user("hello there"), _user("Hi", "Hello! How can I help?", text)],
        [[{"role": "assistant", "content": text}], [{"role": "assistant", "content": "ok"}]],
    )
    res = DecontamStep(DecontamConfig())(table, "pairwise")
    assert res.rejected.column("record_id").to_pylist() == ["r1"]
    assert json.loads(res.rejected.column("detail")[0].as_py())["turn"] == 2
    res = DecontamStep(DecontamConfig(responses=True))(table, "pairwise")
    assert res.rejected.column("record_id").to_pylist() == ["r0", "r1"]
    detail = json.loads(res.rejected.column("detail")[0].as_py())
    assert detail["column"] == "chosen" and detail["benchmark"] == bench and res.kept.num_rows == 0


def test_listwise_and_binary_rows():
    _, text = _items()[5]
    conv = [{"role": "assistant", "content": text}]
    listwise = pa.table(
        {
            "record_id": ["a", "b"],
            "prompt": [_user("clean prompt"), _user("another clean prompt")],
            "completions": [
                [[{"role": "assistant", "content": "fine"}], conv],
                [[{"role": "assistant", "content": "x"}]],
            ],
        }
    )
    res = DecontamStep(DecontamConfig(responses=True))(listwise, "listwise")
    assert res.rejected.column("record_id").to_pylist() == ["a"]
    binary = pa.table({"record_id": ["a", "b"], "prompt": [_user(text), _user("fine")], "completion": [conv, conv]})
    res = DecontamStep(DecontamConfig())(binary, "binary")
    assert res.rejected.column("record_id").to_pylist() == ["a"] and res.kept.num_rows == 1


def test_bad_benchmark_records_are_counted_and_skipped(tmp_path):
    p = tmp_path / "mixed.jsonl"
    lines = [
        {"question_id": 1, "turns": ["Explain how photosynthesis turns sunlight into chemical energy in plants.", ""]},
        {"question_id": 2, "turns": [None, 42, "Summarise the causes of the French revolution in three sentences."]},
        {"id": "q3", "question": "   "},
        {"question": 7},
        {"prompt": {"text": "nested"}},
        {"category": "no text field"},
        {"instruction": "?!... --"},
        "A bare string record is its own prompt text.",
        {"question_id": 9, "turns": [{"role": "user", "content": "How do volcanoes form, and why do some erupt?"}]},
    ]
    p.write_text(
        "\n".join(json.dumps(x) for x in lines[:3]) + "\n{not json\n\n" + "\n".join(json.dumps(x) for x in lines[3:])
    )
    b = read_benchmark(p)
    assert b.name == "mixed" and b.records == 10
    assert [i.item_id for i in b.items] == ["1.0", "2.2", "8", "9.0"]  # a position counts the bad line
    assert dict(b.skipped) == {"empty": 2, "null": 1, "non_text": 3, "missing_field": 1, "no_words": 1, "bad_record": 1}
    assert b.summary()["items"] == 4 and len(b.sha256) == 64 and b.items[3].text.startswith("How do volcanoes")


def test_csv_json_parquet_and_a_chosen_field(tmp_path):
    q = "Describe the water cycle for a ten year old student in plain words."
    (tmp_path / "a.csv").write_text(f'id,question,other\n1,"{q}",x\n2,,y\n3,12345,z\n')
    (tmp_path / "b.json").write_text(json.dumps({"data": [{"input": q}, {"input": ["x y", 3]}]}))
    pq.write_table(pa.table({"text": [q, None, ""]}), tmp_path / "c.parquet")
    with gzip.open(tmp_path / "d.jsonl.gz", "wt") as f:
        f.write(json.dumps({"prompt": q}) + "\n")
    a = read_benchmark(tmp_path / "a.csv")
    assert [i.text for i in a.items] == [q, "12345"] and dict(a.skipped) == {"empty": 1}
    b = read_benchmark(tmp_path / "b.json")
    assert [i.item_id for i in b.items] == ["0", "1.0"] and dict(b.skipped) == {"non_text": 1}
    c = read_benchmark(tmp_path / "c.parquet", "text")
    assert len(c.items) == 1 and dict(c.skipped) == {"null": 1, "empty": 1}
    assert read_benchmark(tmp_path / "d.jsonl.gz").name == "d"
    with pytest.raises(DecontamError, match="no usable text in field 'question'"):
        read_benchmark(tmp_path / "c.parquet", "question")


def test_bad_benchmark_files_are_one_clear_line(tmp_path):
    cases = {}
    with pytest.raises(DecontamError) as e:
        read_benchmarks([tmp_path / "missing.jsonl"])
    cases["missing"] = e.value
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DecontamError) as e:
        read_benchmark(tmp_path / "x.txt")
    cases["type"] = e.value
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(DecontamError) as e:
        read_benchmark(tmp_path / "bad.parquet")
    cases["parquet"] = e.value
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(DecontamError) as e:
        read_benchmark(tmp_path / "bad.json")
    cases["json"] = e.value
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DecontamError) as e:
        read_benchmark(tmp_path / "empty.jsonl")
    cases["empty"] = e.value
    (tmp_path / "sub").mkdir()
    for d in (tmp_path, tmp_path / "sub"):
        (d / "q.jsonl").write_text(json.dumps({"prompt": "What is the capital city of France and why?"}))
    with pytest.raises(DecontamError) as e:
        read_benchmarks([tmp_path / "q.jsonl", tmp_path / "sub" / "q.jsonl"])
    cases["same name"] = e.value
    assert "not found" in str(cases["missing"]) and "unknown type" in str(cases["type"])
    assert "cannot be read as parquet" in str(cases["parquet"]) and "cannot be read as json" in str(cases["json"])
    assert "no usable text" in str(cases["empty"]) and "more than once" in str(cases["same name"])
    for err in cases.values():
        assert isinstance(err, PrefmillError) and "\n" not in str(err)


@pytest.mark.parametrize(
    "kw",
    [
        {"threshold": 0},
        {"threshold": 1.5},
        {"threshold": -0.1},
        {"threshold": float("nan")},
        {"ngram": 0},
        {"ngram": 2.5},
    ],
)
def test_bad_threshold_or_ngram_is_one_clear_line(kw):
    with pytest.raises(DecontamError) as e:
        DecontamStep(DecontamConfig(**kw))
    assert ("--threshold" in str(e.value) or "--ngram" in str(e.value)) and "\n" not in str(e.value)


def test_registered_as_a_curate_step_and_index_built_in_setup():
    entry = STEPS.get("decontaminate")
    assert entry.obj is DecontamStep and entry.extra["stage"] == "curate"
    assert entry.settings({"ngram": 6}).ngram == 6
    s = DecontamStep(DecontamConfig())
    assert s._index is None  # nothing loaded until the worker's setup
    s.setup()
    benches, ix = load(DecontamConfig())
    assert s.index.index.items == ix.index.items == sum(len(b.items) for b in benches) == 240
    assert dict(s.index.short_items()) == {"mt_bench_questions": 8}
    s.teardown()
    assert s._index is None


def test_normalisation_is_the_same_on_the_ascii_and_the_unicode_path():
    texts = ["Don't  STOP, (f(x) = 0)!", "Don’t\u00a0stop… «f(x) = 0»", None, "  ", "Ünïcode — déjà-vu", "tab\there"]
    out = normalised(texts).to_pylist()
    assert out == ["dont stop fx 0", "dont stop fx 0", "", "", "ünïcode déjàvu", "tab here"]
    # one text at a time gives what the mixed batch gave (the two paths keep the order)
    assert [normalised([t]).to_pylist()[0] for t in texts] == out
