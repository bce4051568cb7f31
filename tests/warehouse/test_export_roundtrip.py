"""Exports load with Hugging Face `datasets` exactly as TRL and LLaMA-Factory read them."""

from __future__ import annotations

import json
import os

import pytest

from schemas.ids import conversation_id
from tests.warehouse.conftest import hh_rows, ingest, kto_rows, pandalm_rows
from warehouse.export import export

os.environ.setdefault("HF_HUB_OFFLINE", "1")
datasets = pytest.importorskip("datasets")

MESSAGE_FEATURE = {"role": datasets.Value("string"), "content": datasets.Value("string")}


def is_conversational(example: dict) -> bool:
    """Mirror of trl.data_utils.is_conversational (TRL is not a dependency here)."""
    keys = [k for k in ("prompt", "chosen", "rejected", "completion", "messages") if k in example]
    if not keys:
        return False
    value = example[keys[0]]
    return (
        isinstance(value, list)
        and bool(value)
        and isinstance(value[0], dict)
        and "role" in value[0]
        and "content" in value[0]
    )


@pytest.fixture
def filled(wh):
    ingest(wh, "prefs", {"pairwise": hh_rows(150) + pandalm_rows(150), "binary": kto_rows(120)})
    return wh


def _load(out, file_format, cache):
    ext = "jsonl" if file_format == "jsonl" else "parquet"
    files = {s: str(out / f"{s}.{ext}") for s in ("train", "test") if (out / f"{s}.{ext}").exists()}
    builder = "json" if file_format == "jsonl" else "parquet"
    return datasets.load_dataset(builder, data_files=files, cache_dir=str(cache))


def _messages_feature_ok(feature) -> bool:
    inner = getattr(feature, "feature", None)
    return isinstance(feature, (datasets.List, datasets.LargeList)) and inner == MESSAGE_FEATURE


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_trl_dpo_loads_as_conversational_preference_data(filled, tmp_path, file_format):
    res = export(filled, "prefs", "trl-dpo", tmp_path / "out", file_format=file_format, test_fraction=0.2)
    ds = _load(tmp_path / "out", file_format, tmp_path / "cache")
    assert set(ds) == {"train", "test"}
    for split in ds.values():
        assert split.column_names == ["prompt", "chosen", "rejected"]
        assert all(_messages_feature_ok(split.features[c]) for c in split.column_names)
    ex = ds["train"][0]
    assert is_conversational(ex) and ex["chosen"][-1]["role"] == "assistant" and ex["prompt"][-1]["role"] == "user"
    # Every non-tie pair of the version, exactly once, and nothing else.
    src = filled.read("prefs", "pairwise").to_pylist()
    want = sorted(json.dumps([r["prompt"], r["chosen"], r["rejected"]]) for r in src if r["label"] == "chosen_better")
    got = sorted(json.dumps([r["prompt"], r["chosen"], r["rejected"]]) for s in ds.values() for r in s)
    assert got == want
    assert res.counts["excluded"]["tie"] == sum(r["label"] == "tie" for r in src) > 0
    assert (res.counts["train"], res.counts["test"]) == (ds["train"].num_rows, ds["test"].num_rows)


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_trl_kto_loads_as_unpaired_preference_data(filled, tmp_path, file_format):
    export(filled, "prefs", "trl-kto", tmp_path / "out", file_format=file_format)
    ds = _load(tmp_path / "out", file_format, tmp_path / "cache")
    train = ds["train"]
    assert train.column_names == ["prompt", "completion", "label"]
    assert _messages_feature_ok(train.features["prompt"]) and _messages_feature_ok(train.features["completion"])
    assert train.features["label"] == datasets.Value("bool")
    assert is_conversational(train[0])
    labels = [r["label"] for s in ds.values() for r in s]
    src = filled.read("prefs", "binary").column("label").to_pylist()
    assert sorted(labels) == sorted(src)


def test_no_prompt_in_both_splits(filled, tmp_path):
    export(filled, "prefs", "trl-dpo", tmp_path / "out", test_fraction=0.3, seed=7)
    ds = _load(tmp_path / "out", "jsonl", tmp_path / "cache")
    train = {conversation_id(r["prompt"]) for r in ds["train"]}
    test = {conversation_id(r["prompt"]) for r in ds["test"]}
    assert train and test and not train & test


def test_llamafactory_dataset_info_names_columns_that_exist(filled, tmp_path):
    out = tmp_path / "lf"
    res = export(filled, "prefs", "llamafactory", out, test_fraction=0.2)
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"prefs_dpo_train", "prefs_dpo_test", "prefs_kto_train", "prefs_kto_test"}
    for name, entry in info.items():
        ds = datasets.load_dataset(
            "json", data_files=str(out / entry["file_name"]), split="train", cache_dir=str(tmp_path / "cache")
        )
        assert set(entry["columns"].values()) <= set(ds.column_names), name
        assert entry["formatting"] == "sharegpt"
        if entry.get("ranking"):
            row = ds[0]
            assert row["chosen"]["from"] == row["rejected"]["from"] == "gpt"
            turns = row[entry["columns"]["messages"]]
            assert [t["from"] for t in turns][::2] == ["human"] * ((len(turns) + 1) // 2)
            assert len(turns) % 2 == 1  # LLaMA-Factory: a preference prompt ends on a human turn
        else:
            kto_tag = entry["columns"]["kto_tag"]
            assert ds.features[kto_tag] == datasets.Value("bool")
            tags = entry["tags"]
            last = ds[0][entry["columns"]["messages"]][-1]
            assert last[tags["role_tag"]] == tags["assistant_tag"] and tags["content_tag"] in last
    assert res.counts["parts"]["kto"]["train"] + res.counts["parts"]["kto"]["test"] > 0


@pytest.mark.parametrize("fmt", ["trl-dpo", "trl-kto", "sft", "llamafactory"])
@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_the_same_export_twice_is_byte_identical(filled, tmp_path, fmt, file_format):
    a = export(filled, "prefs", fmt, tmp_path / "a", file_format=file_format)
    b = export(filled, "prefs", fmt, tmp_path / "b", file_format=file_format)
    assert [p.name for p in a.paths] == [p.name for p in b.paths]
    for pa_, pb in zip(a.paths, b.paths):
        assert pa_.read_bytes() == pb.read_bytes(), pa_.name
