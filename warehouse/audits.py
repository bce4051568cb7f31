"""Judge audits: one row per audit of a judge (an LLM judge or a reward model) against a human gold set.

A judge is identified by what shapes its verdicts: the served model, its revision and the prompt
template id (``judges.templates``), or ``bt_reward:<model_id>`` for the embedding reward model (its id
is a content hash, so it is its own revision). The gate in ``flows.judge`` / ``flows.synthesize``
looks up the latest audit of a judge here; ``metrics`` hold everything ``curation.agreement`` reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import orjson

from warehouse.errors import WarehouseError
from warehouse.layout import check_name
from warehouse.runs import new_run_id, to_json, utcnow
from warehouse.sql import one, value

TABLE = "judge_audits"
DDL = """
CREATE TABLE IF NOT EXISTS meta.judge_audits (
    audit_id VARCHAR PRIMARY KEY, run_id VARCHAR, judge VARCHAR NOT NULL, kind VARCHAR NOT NULL,
    model VARCHAR NOT NULL, revision VARCHAR NOT NULL, template_id VARCHAR NOT NULL,
    gold_dataset VARCHAR NOT NULL, gold_version VARCHAR NOT NULL, metrics JSON NOT NULL,
    passed BOOLEAN NOT NULL, thresholds JSON NOT NULL, created_at TIMESTAMP NOT NULL);
"""
VIEWS = {
    TABLE: (
        "SELECT audit_id, judge, kind, model, revision, template_id, gold_dataset, gold_version, passed, "
        "thresholds, metrics, run_id, created_at FROM meta.judge_audits"
    )
}
_COLUMNS = (
    "audit_id",
    "run_id",
    "judge",
    "kind",
    "model",
    "revision",
    "template_id",
    "gold_dataset",
    "gold_version",
    "metrics",
    "passed",
    "thresholds",
    "created_at",
)


@dataclass(frozen=True)
class Audit:
    """One stored audit (``metrics`` and ``thresholds`` parsed)."""

    audit_id: str
    run_id: str | None
    judge: str
    kind: str
    model: str
    revision: str
    template_id: str
    gold_dataset: str
    gold_version: str
    metrics: dict
    passed: bool
    thresholds: dict
    created_at: datetime

    def as_dict(self) -> dict:
        return {k: (str(v) if k == "created_at" else v) for k, v in self.__dict__.items()}


def judge_key(model: str, revision: str, template_id: str) -> str:
    """The ``judge`` column: what a reader needs to tell two judges apart, in one string."""
    if model.startswith("bt_reward:"):
        return model
    return f"{model}@{revision or '?'} [{template_id or '?'}]"


def insert(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str | None,
    kind: str,
    model: str,
    revision: str,
    template_id: str,
    gold_dataset: str,
    gold_version: str,
    metrics: dict,
    passed: bool,
    thresholds: dict,
) -> str:
    check_name("dataset", gold_dataset)
    if not model:
        raise WarehouseError("an audit needs the judge's model name")
    audit_id = new_run_id("audit")
    con.execute(
        f"INSERT INTO meta.judge_audits ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})",
        [
            audit_id,
            run_id,
            judge_key(model, revision, template_id),
            kind,
            model,
            revision or "",
            template_id or "",
            gold_dataset,
            gold_version,
            to_json(metrics),
            bool(passed),
            to_json(thresholds),
            utcnow(),
        ],
    )
    return audit_id


def has_table(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        value(
            con,
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'meta' AND table_name = ?",
            [TABLE],
        )
    )


def latest(
    con: duckdb.DuckDBPyConnection,
    model: str,
    revision: str,
    template_id: str = "",
    gold_dataset: str | None = None,
) -> Audit | None:
    """The most recent audit of exactly this judge (optionally on one gold set), or None."""
    if not has_table(con):  # a warehouse created before audits existed, not written to since
        return None
    sql = f"SELECT {', '.join(_COLUMNS)} FROM meta.judge_audits WHERE model = ? AND revision = ? AND template_id = ?"
    params: list = [model, revision or "", template_id or ""]
    if gold_dataset is not None:
        sql += " AND gold_dataset = ?"
        params.append(gold_dataset)
    row = one(con, sql + " ORDER BY created_at DESC, audit_id DESC LIMIT 1", params)
    if row is None:
        return None
    rec = dict(zip(_COLUMNS, row))
    rec["metrics"] = orjson.loads(rec["metrics"])
    rec["thresholds"] = orjson.loads(rec["thresholds"])
    return Audit(**rec)
