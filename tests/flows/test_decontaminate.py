"""Decontamination as a run on real hh-rlhf pairs with planted benchmark prompts: a child version without
them, every removal explained (benchmark, coverage), a report per benchmark, bad input as one line."""

import gzip
import json

import pytest

from curation.benchmarks import DEFAULT_BENCHMARKS
from curation.decontam import DecontamError
from flows.decontaminate import decontaminate
from flows.jobs import ingest
from schemas.errors import PrefmillError
from tests.conftest import DATA
from warehouse import Warehouse, WarehouseError

N = 80


def _questions(name: str) -> list[list[str]]:
    path = DATA / "benchmark_prompts" / f"{name}.jsonl"
    return [json.loads(line)["turns"] for line in path.read_text().splitlines()]


def _plant(dialogue: str, turn: int, text: str) -> str:
    """Put ``text`` into the ``turn``-th human turn of an hh-rlhf dialogue string."""
    parts = dialogue.split("\n\nHuman: ")
    k = 1 + min(turn, len(parts) - 2)
    head, sep, rest = parts[k].partition("\n\nAssistant: ")
    parts[k] = f"{head}\n\n{text}{sep}{rest}" if turn else f"{text}{sep}{rest}"
    return "\n\nHuman: ".join(parts)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The first N hh-rlhf test pairs; 4 of them carry a benchmark prompt (as the first human turn, upper-cased,
    appended to a real turn, in a later human turn)."""
    tmp = tmp_path_factory.mktemp("decon")
    with gzip.open(DATA / "hh_rlhf_harmless_base" / "test.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(next(f)) for _ in range(N)]
    mt, vicuna = _questions("mt_bench_questions"), _questions("vicuna_bench_questions")
    plants = {
        3: (0, mt[0][0], "mt_bench_questions"),
        10: (0, vicuna[9][0].upper(), "vicuna_bench_questions"),
        25: (1, mt[40][0].replace(",", "").replace(".", " ."), "mt_bench_questions"),
        40: (2, mt[12][1] + "  Please answer briefly.", "mt_bench_questions"),
    }
    for i, (turn, text, _) in plants.items():
        for side in ("chosen", "rejected"):
            rows[i][side] = _plant(rows[i][side], turn, text)
    src = tmp / "planted.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return src, {i: b for i, (_, _, b) in plants.items()}


@pytest.fixture(scope="module")
def wh(planted, tmp_path_factory):
    wh = Warehouse(tmp_path_factory.mktemp("wh"))
    ingest(wh, [str(planted[0])], "hh-rlhf", "hh")
    return wh


def test_planted_benchmark_prompts_leave_the_child_version(wh, planted):
    _, plants = planted
    parent = wh.resolve_version("hh")
    before = wh.read("hh", "pairwise", parent)
    rep = decontaminate(wh, "hh")
    c = rep.commit.counts
    assert c.rows_read == before.num_rows == c.rows_kept + c.rows_rejected + c.rows_duplicate
    assert c.rows_rejected == len(plants) and rep.commit.version_id != parent == rep.parent_version
    removed = wh.query(f"SELECT record_id, reason, detail FROM removals WHERE run_id = '{rep.run_id}'").to_pylist()
    assert sorted(r["reason"] for r in removed) == sorted(f"contaminated:{b}" for b in plants.values())
    by_id = {r["record_id"]: r for r in removed}
    rows = before.select(["record_id", "source_row"]).to_pylist()
    assert {r["record_id"] for r in rows if r["source_row"] in plants} == set(by_id)  # exactly the planted rows
    for r in removed:
        d = json.loads(r["detail"])
        assert d["coverage"] >= 0.5 and d["column"] == "prompt" and r["reason"] == f"contaminated:{d['benchmark']}"
        assert d["item"] and d["text"]
    later = [json.loads(r["detail"]) for r in removed if json.loads(r["detail"])["turn"] > 0]
    assert later, "a benchmark prompt in a later human turn is found"
    # the report: rows checked, found per benchmark, items and skips per benchmark
    r = rep.report
    assert r["rows_checked"] == before.num_rows and r["rows_contaminated"] == len(plants)
    assert {k: v["rows_contaminated"] for k, v in r["benchmarks"].items()} == {
        "mt_bench_questions": 3,
        "vicuna_bench_questions": 1,
    }
    assert (
        r["benchmarks"]["mt_bench_questions"]["items"] == 160
        and r["benchmarks"]["vicuna_bench_questions"]["skipped"] == {}
    )
    # the child has the rest; the parent is untouched; run_steps add up
    kept = wh.read("hh", "pairwise")
    assert kept.num_rows == c.rows_kept and not set(kept.column("record_id").to_pylist()) & set(by_id)
    assert wh.read("hh", "pairwise", parent).num_rows == before.num_rows
    steps = wh.query(f"SELECT * FROM run_steps WHERE run_id = '{rep.run_id}'").to_pylist()
    assert [s["step"] for s in steps] == ["decontaminate", "validate"]
    assert all(s["rows_in"] == s["rows_kept"] + s["rows_rejected"] + s["rows_duplicate"] for s in steps)
    # a second pass over the clean child finds nothing
    again = decontaminate(wh, "hh")
    assert again.commit.counts.rows_rejected == 0 and again.report["rows_checked"] == c.rows_kept


def test_own_benchmark_file_with_bad_items_is_reported(wh, tmp_path):
    b = tmp_path / "mine.jsonl"
    b.write_text(
        "\n".join(
            [
                json.dumps({"question": "What are some pranks with a pen I can do?"}),
                json.dumps({"question": ""}),
                json.dumps({"question": 12}),
                json.dumps({"other": "x"}),
            ]
        )
    )
    rep = decontaminate(wh, "hh", [str(b), DEFAULT_BENCHMARKS[1]], ngram=5, threshold=0.6)
    mine = rep.report["benchmarks"]["mine"]
    assert mine["items"] == 1 and mine["skipped"] == {"empty": 1, "non_text": 1, "missing_field": 1}
    assert mine["rows_contaminated"] >= 1 and rep.report["ngram"] == 5  # hh-rlhf's first dialogue asks exactly that
    assert rep.commit.counts.rows_rejected == rep.report["rows_contaminated"]


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"benchmarks": ["/nonexistent/bench.jsonl"]}, "benchmark file not found"),
        ({"threshold": 0.0}, "--threshold"),
        ({"threshold": 1.01}, "--threshold"),
        ({"ngram": 0}, "--ngram"),
    ],
)
def test_bad_input_is_one_line_and_publishes_nothing(wh, kw, match):
    head = wh.resolve_version("hh")
    runs = wh.query("SELECT count(*) n FROM runs").to_pylist()[0]["n"]
    with pytest.raises(DecontamError, match=match) as e:
        decontaminate(wh, "hh", **kw)
    assert isinstance(e.value, PrefmillError) and "\n" not in str(e.value)
    assert wh.resolve_version("hh") == head
    assert wh.query("SELECT count(*) n FROM runs").to_pylist()[0]["n"] == runs  # refused before a run began


def test_unknown_dataset(wh):
    with pytest.raises(WarehouseError):
        decontaminate(wh, "nope")
