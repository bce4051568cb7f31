"""export(): formats, split rules, conversions and the dataset card."""

from __future__ import annotations

import json

import orjson
import pyarrow as pa
import pytest

from schemas import records
from schemas.ids import conversation_id
from tests.warehouse.conftest import hh_rows, ingest
from warehouse import RunCounts, WarehouseError
from warehouse.export import export


def _jsonl(path):
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_split_is_by_key_seeded_and_roughly_the_requested_fraction(mixed, tmp_path):
    a = export(mixed, "mix", "trl-dpo", tmp_path / "a", test_fraction=0.25, seed=1)
    export(mixed, "mix", "trl-dpo", tmp_path / "b", test_fraction=0.25, seed=2)
    total = a.counts["train"] + a.counts["test"]
    assert 0.1 < a.counts["test"] / total < 0.4
    test_a = {conversation_id(r["prompt"]) for r in _jsonl(tmp_path / "a" / "test.jsonl")}
    test_b = {conversation_id(r["prompt"]) for r in _jsonl(tmp_path / "b" / "test.jsonl")}
    assert test_a != test_b  # another seed, another split
    none = export(mixed, "mix", "trl-dpo", tmp_path / "c", test_fraction=0.0)
    assert none.counts["test"] == 0 and not (tmp_path / "c" / "test.jsonl").exists()
    assert len(_jsonl(tmp_path / "c" / "train.jsonl")) == total


def test_a_curated_cluster_column_keeps_whole_clusters_in_one_split(mixed, tmp_path):
    parent = mixed.resolve_version("mix")
    pairs = mixed.read("mix", "pairwise")
    # Curation's prompt clusters: several prompts per cluster (here: by the first prompt word).
    clusters = [
        p[0]["content"].split()[0].lower() if p[0]["content"].split() else ""
        for p in pairs.column("prompt").to_pylist()
    ]
    curated = pairs.append_column("prompt_cluster", pa.array(clusters))
    run_id = mixed.begin_run("curate", "mix", {})
    n = pairs.num_rows
    mixed.commit_derived(run_id, "mix", parent, {"pairwise": curated}, None, RunCounts(n, n, n, 0), [], {})
    export(mixed, "mix", "trl-dpo", tmp_path / "out", test_fraction=0.3, split_key="prompt_cluster")
    cluster_of = dict(zip((conversation_id(p) for p in pairs.column("prompt").to_pylist()), clusters))
    split_clusters = {
        s: {cluster_of[conversation_id(r["prompt"])] for r in _jsonl(tmp_path / "out" / f"{s}.jsonl")}
        for s in ("train", "test")
    }
    assert split_clusters["train"] and split_clusters["test"]
    assert not split_clusters["train"] & split_clusters["test"]
    with pytest.raises(WarehouseError, match="split key 'prompt_cluster' is not a column"):
        export(mixed, "mix", "trl-kto", tmp_path / "kto", split_key="prompt_cluster")  # binary rows lack it


def test_rankings_converted_to_pairs_on_request(mixed, tmp_path):
    pytest.importorskip("schemas.conversions")
    plain = export(mixed, "mix", "trl-dpo", tmp_path / "plain", test_fraction=0.0)
    conv = export(
        mixed,
        "mix",
        "trl-dpo",
        tmp_path / "conv",
        test_fraction=0.0,
        include_converted={"rankings": {"policy": "adjacent"}},
    )
    added = conv.counts["converted"]["ranking->pairs:adjacent"]
    assert added > 0 and conv.counts["train"] == plain.counts["train"] + added
    rows = _jsonl(tmp_path / "conv" / "train.jsonl")
    assert all(r["chosen"] != r["rejected"] for r in rows)
    readme = (tmp_path / "conv" / "README.md").read_text()
    assert "ranking->pairs:adjacent" in readme and f"| ranking->pairs:adjacent | {added} |" in readme


@pytest.mark.parametrize(
    "fmt, include, message",
    [
        ("trl-dpo", {"nonsense": {}}, "unknown source 'nonsense'"),
        ("listwise", {"rankings": {}}, "listwise cannot use converted rankings"),
        ("trl-dpo", {"rankings": {"policy": "sideways"}}, "converting rankings to pairwise"),
    ],
)
def test_bad_conversion_requests_are_clear_errors(mixed, tmp_path, fmt, include, message):
    pytest.importorskip("schemas.conversions")
    with pytest.raises(WarehouseError, match=message):
        export(mixed, "mix", fmt, tmp_path / "x", include_converted=include)


def test_listwise_export_keeps_responses_scores_and_ranks(mixed, tmp_path):
    export(mixed, "mix", "listwise", tmp_path / "lw", test_fraction=0.0)
    got = {conversation_id(r["prompt"]): r for r in _jsonl(tmp_path / "lw" / "train.jsonl")}
    src = mixed.read("mix", "listwise").to_pylist()
    assert len(got) == len(src)
    for r in src:
        out = got[r["prompt_id"]]
        assert set(out) == {"prompt", "responses", "scores", "ranks"}
        assert (out["responses"], out["scores"], out["ranks"]) == (r["completions"], r["scores"], r["ranks"])


def test_sft_takes_preferred_completions_only(mixed, tmp_path):
    res = export(mixed, "mix", "sft", tmp_path / "sft", test_fraction=0.0)
    msgs = [r["messages"] for r in _jsonl(tmp_path / "sft" / "train.jsonl")]
    assert all(m[-1]["role"] == "assistant" for m in msgs)
    answers = {json.dumps(m[-1:]) for m in msgs}
    undesirable = [r["completion"] for r in mixed.read("mix", "binary").to_pylist() if not r["label"]]
    desirable = [r["completion"] for r in mixed.read("mix", "binary").to_pylist() if r["label"]]
    assert not any(json.dumps(c) in answers and c not in desirable for c in undesirable)
    assert res.counts["excluded"]["undesirable"] == len(undesirable)
    assert len({json.dumps(m) for m in msgs}) == len(msgs)  # one example per prompt + answer


def test_llamafactory_system_prompts_and_unrepresentable_rows(wh, tmp_path):
    sys_row = records.pairwise(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
        [{"role": "assistant", "content": "Hello."}],
        [{"role": "assistant", "content": "Go away."}],
    )
    two_turn_answer = records.pairwise(
        [{"role": "user", "content": "Count to two."}],
        [{"role": "assistant", "content": "One."}, {"role": "assistant", "content": "Two."}],
        [{"role": "assistant", "content": "Three."}],
    )
    rows = [
        {**r, "format": "hand", "source_file": "hand.jsonl", "source_row": i}
        for i, r in enumerate([sys_row, two_turn_answer])
    ]
    ingest(wh, "lf", {"pairwise": rows})
    res = export(wh, "lf", "llamafactory", tmp_path / "lf", test_fraction=0.0)
    assert res.counts["excluded"] == {"not_representable_in_llamafactory": 1}
    (line,) = _jsonl(tmp_path / "lf" / "dpo_train.jsonl")
    assert line == {
        "conversations": [{"from": "human", "value": "Hi?"}],
        "chosen": {"from": "gpt", "value": "Hello."},
        "rejected": {"from": "gpt", "value": "Go away."},
        "system": "Be brief.",
    }
    info = json.loads((tmp_path / "lf" / "dataset_info.json").read_text())
    assert info["lf_dpo_train"]["columns"]["system"] == "system"


def test_card_records_version_counts_sources_and_parameters(mixed, tmp_path):
    res = export(mixed, "mix", "trl-dpo", tmp_path / "out", test_fraction=0.2, seed=3)
    card = (tmp_path / "out" / "README.md").read_text()
    n_train, n_test = (len(_jsonl(tmp_path / "out" / f"{s}.jsonl")) for s in ("train", "test"))
    assert res.version_id in card
    assert f"| dpo | train | {n_train} | train.jsonl |" in card and f"| dpo | test | {n_test} | test.jsonl |" in card
    assert "hh_rlhf_harmless_base/test.jsonl.gz | hh-rlhf | human | 120 |" in card
    assert f"tie {res.counts['excluded']['tie']}" in card
    assert '"seed": 3' in card and '"split_key": "prompt_id"' in card
    assert card.startswith(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: train.jsonl"
    )


def test_an_older_version_can_be_exported_by_prefix(mixed, tmp_path):
    old = mixed.resolve_version("mix")
    ingest(mixed, "mix", {"pairwise": hh_rows(30, start=500)})
    res = export(mixed, "mix", "trl-dpo", tmp_path / "old", version=old[:10], test_fraction=0.0)
    assert res.version_id == old
    assert res.counts["train"] == sum(
        r["label"] == "chosen_better" for r in mixed.read("mix", "pairwise", old).to_pylist()
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fmt": "openai"}, "unknown export format 'openai'"),
        ({"file_format": "csv"}, "unknown file format 'csv'"),
        ({"test_fraction": 1.0}, r"test_fraction must be in \[0, 1\)"),
        ({"dataset": "nope"}, "unknown dataset 'nope'"),
        ({"version": "ffff0000"}, "has no version 'ffff0000'"),
    ],
)
def test_bad_export_arguments_are_clear_errors(mixed, tmp_path, kwargs, message):
    args = {"dataset": "mix", "fmt": "trl-dpo", **kwargs}
    with pytest.raises(WarehouseError, match=message):
        export(mixed, args.pop("dataset"), args.pop("fmt"), tmp_path / "x", **args)


def test_a_format_with_no_usable_rows_is_an_error(wh, tmp_path):
    ingest(wh, "pairs-only", {"pairwise": hh_rows(5)})
    with pytest.raises(WarehouseError, match="nothing to export"):
        export(wh, "pairs-only", "trl-kto", tmp_path / "x")


def test_an_unwritable_destination_is_a_clear_error(mixed, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WarehouseError, match="cannot write the export to"):
        export(mixed, "mix", "trl-dpo", blocker / "out")
