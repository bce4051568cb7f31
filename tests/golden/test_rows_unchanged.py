"""The same inputs give the same rows: the demo's ingests and three curate runs, against the fingerprints
recorded before the step-contract redesign (tests/golden/demo_rows.json, from ``tests.golden.fingerprint``)."""

import json

import pytest

from tests.golden.fingerprint import GOLDEN, fingerprint


@pytest.fixture(scope="module")
def now(tmp_path_factory) -> dict:
    return fingerprint(tmp_path_factory.mktemp("golden") / "wh")


@pytest.fixture(scope="module")
def before() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.mark.slow
def test_ingest_rows_ids_and_quarantine_unchanged(now, before):
    for got, want in zip(now["ingest"], before["ingest"], strict=True):
        assert got["source"] == want["source"]
        assert got["counts"] == want["counts"], got["source"]
        assert got["quarantine"]["reasons"] == want["quarantine"]["reasons"], got["source"]
        assert got["quarantine"] == want["quarantine"], got["source"]
        assert got["rows"] == want["rows"], got["source"]
        assert got["steps"] == want["steps"], got["source"]


@pytest.mark.slow
def test_curate_removals_and_selections_unchanged(now, before):
    for got, want in zip(now["curate"], before["curate"], strict=True):
        where = f"{got['dataset']}/{got['method']}"
        assert got["removals"]["reasons"] == want["removals"]["reasons"], where
        assert got["removals"] == want["removals"], where
        assert (got["kept"], got["kept_ids"]) == (want["kept"], want["kept_ids"]), where
        assert got["kept_content"] == want["kept_content"], where
        assert got["counts"] == want["counts"], where
        assert got["steps"] == want["steps"], where
