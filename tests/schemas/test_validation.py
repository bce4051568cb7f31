"""Row and batch validation: Arrow schema + Great Expectations suites (schemas/validation.py)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from schemas import gx_suites
from schemas.canonical import PAIRWISE
from schemas.records import binary, listwise, pairwise, ratings, to_table
from schemas.step import REJECTED
from schemas.validation import ValidateStep, ValidationConfig, check_split_disjoint, validate_batch

HH = Path(__file__).resolve().parents[2] / "examples" / "data" / "hh_rlhf_harmless_base" / "test.jsonl.gz"
U = [{"role": "user", "content": "How do I boil an egg?"}]


def validate(table: pa.Table, shape: str, config: ValidationConfig | None = None) -> tuple[pa.Table, list[dict]]:
    """``ValidateStep`` on one batch, as the executor calls it: kept rows and the rejected rows."""
    res = ValidateStep(config)(table, shape)
    assert res.rejected.schema == REJECTED
    return res.kept, res.rejected.to_pylist()


def A(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def lineage(row: dict, i: int = 0) -> dict:
    row.update(format="test", source_file="unit.jsonl", source_row=i, run_id="run-1")
    return row


def pw(i=0, prompt=U, chosen=None, rejected=None, **kw) -> dict:
    return lineage(pairwise(prompt, chosen or A("Simmer it for nine minutes."), rejected or A("No idea."), **kw), i)


def bn(i=0, prompt=U, completion=None, **kw) -> dict:
    return lineage(binary(prompt, completion or A("Simmer it."), label=kw.pop("label", True), **kw), i)


def lw(i=0, prompt=U, completions=None, **kw) -> dict:
    comps = completions or [A("first"), A("second"), A("third")]
    if "ranks" not in kw and "scores" not in kw:
        kw["ranks"] = list(range(len(comps)))
    return lineage(listwise(prompt, comps, **kw), i)


def rt(i=0, prompt=U, completion=None, attributes=None, scales=None, **kw) -> dict:
    return lineage(
        ratings(
            prompt,
            completion or A("Simmer it."),
            {"overall": 4.0} if attributes is None else attributes,
            scales={"overall": (1.0, 5.0)} if scales is None else scales,
            **kw,
        ),
        i,
    )


def mutate(row: dict, **changes) -> dict:
    return {**row, **changes}


# (shape, bad row, expected reason) — each bad row sits next to a good row of the same shape.
BAD = [
    ("pairwise", lambda: pw(chosen=A("Same."), rejected=A("Same.")), "chosen_equals_rejected"),
    ("pairwise", lambda: pw(label="rejected_better"), "invalid_label"),
    ("pairwise", lambda: pw(origin="crowd"), "invalid_origin"),
    ("pairwise", lambda: pw(chosen=A("   ")), "empty_turn"),  # normalises to ""
    (
        "pairwise",
        lambda: pw(prompt=[{"role": "user", "content": "q"}, {"role": "user", "content": "q2"}]),
        "roles_not_alternating",
    ),
    (
        "pairwise",
        lambda: pw(
            prompt=[
                {"role": "user", "content": "q"},
                {"role": "system", "content": "s"},
                {"role": "user", "content": "q2"},
            ]
        ),
        "roles_not_alternating",
    ),
    ("pairwise", lambda: pw(prompt=[{"role": "human", "content": "q"}]), "invalid_role"),
    (
        "pairwise",
        lambda: pw(prompt=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]),
        "judged_turn_not_assistant",
    ),
    ("pairwise", lambda: pw(prompt=[]), "judged_turn_not_assistant"),
    ("pairwise", lambda: mutate(pw(), chosen_id=None), "missing_field"),
    ("pairwise", lambda: mutate(pw(), chosen=[]), "judged_turn_not_assistant"),
    ("binary", lambda: bn(completion=[{"role": "user", "content": "hm"}]), "roles_not_alternating"),
    ("binary", lambda: bn(completion=A("fine") + [{"role": "user", "content": "and?"}]), "judged_turn_not_assistant"),
    ("binary", lambda: bn(origin="oracle"), "invalid_origin"),
    ("binary", lambda: mutate(bn(), label=None), "missing_field"),
    ("listwise", lambda: lw(completions=[A("only one")], ranks=[0]), "too_few_completions"),
    ("listwise", lambda: lw(ranks=[0, -1, 2]), "ranks_invalid"),
    ("listwise", lambda: lw(ranks=[0, 1]), "ranks_invalid"),
    ("listwise", lambda: lw(scores=[0.5, float("nan"), 0.1]), "ranks_invalid"),
    ("listwise", lambda: mutate(lw(), ranks=None), "ranks_invalid"),
    ("listwise", lambda: mutate(lw(), completion_ids=["x", "y"]), "ids_mismatch"),
    ("listwise", lambda: lw(completions=[A("a"), A(""), A("c")]), "empty_turn"),
    ("ratings", lambda: rt(attributes={"overall": 6.0}), "rating_out_of_range"),
    ("ratings", lambda: rt(attributes={"overall": 0.5}), "rating_out_of_range"),
    ("ratings", lambda: rt(attributes={"overall": float("nan")}), "rating_out_of_range"),
    ("ratings", lambda: rt(attributes={}), "empty_ratings"),
]

GOOD = [
    ("pairwise", lambda: pw(label="tie")),
    ("pairwise", lambda: pw(prompt=[{"role": "system", "content": "Be brief."}] + U)),
    ("pairwise", lambda: pw(prompt=U + A("Soft or hard?") + [{"role": "user", "content": "Hard."}])),
    ("pairwise", lambda: pw(chosen=A("Nine minutes.") + [{"role": "user", "content": "ok"}] + A("Enjoy."))),
    ("binary", lambda: bn(label=False, origin="ai_judge")),
    ("listwise", lambda: lw(ranks=[0, 1, 1])),
    ("listwise", lambda: lw(scores=[0.2, 0.9, 0.2])),
    ("ratings", lambda: rt(attributes={"overall": 5.0})),  # on the bound
    ("ratings", lambda: rt(attributes={"overall": 100.0, "x": -3.0}, scales={})),  # no declared scale
]


def good_for(shape: str) -> dict:
    return {"pairwise": pw, "binary": bn, "listwise": lw, "ratings": rt}[shape](
        i=7, prompt=[{"role": "user", "content": f"a good {shape} prompt"}]
    )


@pytest.mark.parametrize("shape,make,reason", BAD, ids=[f"{s}-{r}-{i}" for i, (s, _, r) in enumerate(BAD)])
def test_each_rule_rejects_its_violation_and_keeps_the_good_row(shape, make, reason):
    good, bad = good_for(shape), lineage(make(), 3)
    kept, rejects = validate(to_table([good, bad], shape), shape)
    assert kept.column("record_id").to_pylist() == [good["record_id"]]
    assert len(rejects) == 1
    r = rejects[0]
    assert (r["reason"], r["step"], r["shape"], r["record_id"], r["source_file"], r["source_row"]) == (
        reason,
        "validate",
        shape,
        bad["record_id"],
        "unit.jsonl",
        3,
    )
    assert reason in r["detail"]
    raw = orjson.loads(r["raw"])
    assert raw["record_id"] == bad["record_id"] and raw["prompt"] == bad["prompt"]


@pytest.mark.parametrize("shape,make", GOOD, ids=[f"{s}-{i}" for i, (s, _) in enumerate(GOOD)])
def test_valid_variants_pass(shape, make):
    row = make()
    kept, rejects = validate(to_table([row], shape), shape)
    assert rejects == [] and kept.num_rows == 1


def test_text_cap_is_configurable():
    row = pw(chosen=A("x" * 120))
    assert validate(to_table([row], "pairwise"), "pairwise")[0].num_rows == 1
    kept, rejects = validate(to_table([row], "pairwise"), "pairwise", ValidationConfig(max_text_bytes=100))
    assert kept.num_rows == 0 and rejects[0]["reason"] == "text_too_long"
    assert "max_text_bytes" not in rejects[0]["detail"] and "100" in rejects[0]["detail"]


def test_several_failures_reject_once_with_first_rule_and_the_rest_in_detail():
    row = pw(chosen=A("Same " * 40), rejected=A("Same " * 40), origin="crowd")
    kept, rejects = validate(to_table([row], "pairwise"), "pairwise", ValidationConfig(max_text_bytes=50))
    assert kept.num_rows == 0 and len(rejects) == 1
    assert rejects[0]["reason"] == "chosen_equals_rejected"
    assert "invalid_origin" in rejects[0]["detail"] and "text_too_long" in rejects[0]["detail"]


def test_missing_column_rejects_every_row_as_schema_mismatch():
    rows = [pw(i=i, chosen=A(f"answer {i}")) for i in range(3)]
    table = to_table(rows, "pairwise").drop_columns(["label"])
    kept, rejects = validate(table, "pairwise")
    assert kept.num_rows == 0 and kept.schema == PAIRWISE
    assert [r["reason"] for r in rejects] == ["schema_mismatch"] * 3
    assert [r["source_row"] for r in rejects] == [0, 1, 2]
    assert "'label' is missing" in rejects[0]["detail"]


def test_untypable_column_is_schema_mismatch_but_castable_one_is_kept():
    table = to_table([pw(i=1), pw(i=2, chosen=A("other"))], "pairwise")
    idx = table.schema.get_field_index("source_row")
    as_int32 = table.set_column(idx, "source_row", table["source_row"].cast(pa.int32()))
    kept, rejects = validate(as_int32, "pairwise")
    assert rejects == [] and kept.schema.field("source_row").type == pa.int64()
    as_text = table.set_column(idx, "source_row", pa.array(["one", "two"]))
    kept, rejects = validate(as_text, "pairwise")
    assert kept.num_rows == 0 and {r["reason"] for r in rejects} == {"schema_mismatch"}
    assert "source_row" in rejects[0]["detail"]


def test_empty_table():
    kept, rejects = validate(PAIRWISE.empty_table(), "pairwise")
    assert kept.num_rows == 0 and rejects == []


# ---------------------------------------------------------------- real data vs a per-row reference


def _dialogue(text: str) -> list[dict]:
    parts = re.split(r"\n\n(Human|Assistant): ", text)
    return [
        {"role": "user" if parts[i] == "Human" else "assistant", "content": parts[i + 1]}
        for i in range(1, len(parts) - 1, 2)
    ]


@pytest.fixture(scope="module")
def hh_rows() -> list[dict]:
    with gzip.open(HH, "rt") as f:
        recs = [json.loads(line) for line in f]
    rows = []
    for i, rec in enumerate(recs):
        c, r = _dialogue(rec["chosen"]), _dialogue(rec["rejected"])
        rows.append(lineage(pairwise(c[:-1], c[-1:], r[-1:]), i))
    return rows


def _reference_reason(row: dict, cap: int) -> str | None:
    """Plain-Python statement of the pairwise rules, in suite order, for cross-checking."""
    p, ch, rj = row["prompt"], row["chosen"], row["rejected"]
    msgs = p + ch + rj
    roles_ok = all(m["role"] in ("system", "user", "assistant") for m in msgs)
    body = p[1:] if p and p[0]["role"] == "system" else p
    alternating = all(m["role"] == ("user" if k % 2 == 0 else "assistant") for k, m in enumerate(body)) and all(
        m["role"] == ("assistant" if k % 2 == 0 else "user") for c in (ch, rj) for k, m in enumerate(c)
    )
    checks = [
        ("chosen_equals_rejected", ch == rj),
        ("invalid_label", row["label"] not in ("chosen_better", "tie")),
        ("invalid_origin", row["origin"] not in ("human", "ai_judge", "reward_model", "synthetic")),
        ("empty_turn", any(not m["content"].strip() for m in msgs)),
        ("invalid_role", not roles_ok),
        ("roles_not_alternating", roles_ok and not alternating),
        (
            "judged_turn_not_assistant",
            not (
                p
                and p[-1]["role"] == "user"
                and all(c and c[0]["role"] == "assistant" and c[-1]["role"] == "assistant" for c in (ch, rj))
            ),
        ),
        ("text_too_long", sum(len(m["content"].encode()) for m in msgs) > cap),
    ]
    return next((name for name, failed in checks if failed), None)


def test_real_hh_rows_match_the_reference_rules(hh_rows):
    # Add violations to a slice of real rows so every rule is exercised on real text.
    rows = list(hh_rows)
    rows[5] = lineage(pairwise(rows[5]["prompt"], rows[5]["chosen"], rows[5]["chosen"]), 5)
    rows[9] = mutate(rows[9], label="maybe")
    rows[11] = mutate(rows[11], prompt=rows[11]["prompt"] + rows[11]["chosen"])
    rows[13] = mutate(rows[13], prompt=[{"role": "system", "content": "sys"}] + rows[13]["prompt"])  # still valid
    cap = 4000
    kept, rejects = validate(to_table(rows, "pairwise"), "pairwise", ValidationConfig(max_text_bytes=cap))
    expected = {r["record_id"]: _reference_reason(r, cap) for r in rows}
    got = {r["record_id"]: r["reason"] for r in rejects}
    assert got == {k: v for k, v in expected.items() if v is not None}
    assert kept.num_rows + len(rejects) == len(rows)
    assert set(kept.column("record_id").to_pylist()) == {k for k, v in expected.items() if v is None}
    assert {"chosen_equals_rejected", "invalid_label", "judged_turn_not_assistant", "text_too_long"} <= set(
        got.values()
    )
    assert expected[rows[13]["record_id"]] is None


def test_mixed_batch_keeps_good_rows_around_bad_ones_and_counts_add_up(hh_rows):
    clean = hh_rows[:300]
    alone_kept, alone_rej = validate(to_table(clean, "pairwise"), "pairwise")
    bad = [pw(i=900, label="nope"), pw(i=901, chosen=A("dup"), rejected=A("dup")), mutate(pw(i=902), origin=None)]
    mixed = [bad[0]] + clean[:150] + [bad[1]] + clean[150:] + [bad[2]]
    kept, rejects = validate(to_table(mixed, "pairwise"), "pairwise")
    assert kept.num_rows + len(rejects) == len(mixed)
    assert kept.column("record_id").to_pylist() == alone_kept.column("record_id").to_pylist()
    by_id = {r["record_id"]: r["reason"] for r in rejects}
    assert [by_id[b["record_id"]] for b in bad] == ["invalid_label", "chosen_equals_rejected", "missing_field"]
    assert len(rejects) == len(alone_rej) + 3


def test_chunked_and_sliced_tables_give_the_same_answer(hh_rows):
    rows = hh_rows[:400]
    table = to_table(rows, "pairwise")
    chunked = pa.concat_tables([table.slice(0, 123), table.slice(123, 200), table.slice(323)])
    a_kept, a_rej = validate(table, "pairwise")
    b_kept, b_rej = validate(chunked, "pairwise")
    assert a_kept.column("record_id").to_pylist() == b_kept.column("record_id").to_pylist()
    assert [(r["record_id"], r["reason"]) for r in a_rej] == [(r["record_id"], r["reason"]) for r in b_rej]
    s_kept, s_rej = validate(table.slice(57, 100), "pairwise")
    ref = validate(to_table(rows[57:157], "pairwise"), "pairwise")
    assert s_kept.column("record_id").to_pylist() == ref[0].column("record_id").to_pylist()
    assert [r["record_id"] for r in s_rej] == [r["record_id"] for r in ref[1]]


def test_gx_context_and_suites_are_built_once():
    validate(to_table([pw()], "pairwise"), "pairwise")
    g = gx_suites._gx()
    assert g is gx_suites._gx()
    suite = g.context.suites.get("rows_pairwise")
    assert len(suite.expectations) == len(gx_suites.ROW_RULES["pairwise"])
    assert {e.meta["reason"] for e in suite.expectations} >= {"chosen_equals_rejected", "roles_not_alternating"}
    validate(to_table([pw()], "pairwise"), "pairwise", ValidationConfig(max_text_bytes=10))
    assert g.context.suites.get("rows_pairwise").expectations[0].id == suite.expectations[0].id


# ----------------------------------------------------------------------------------- batch rules


def _pairs(n: int, ties: int) -> pa.Table:
    return to_table(
        [pw(i=i, chosen=A(f"answer {i}"), label="tie" if i < ties else "chosen_better") for i in range(n)], "pairwise"
    )


def test_tie_rate_over_bound_fails_with_a_readable_report():
    report = validate_batch(_pairs(30, 20), "pairwise")
    assert not report.success and report.failures == ["tie_rate"]
    line = next(ln for ln in report.text.splitlines() if "tie_rate" in ln)
    assert "FAIL" in line and "0.6667" in line and "[0, 0.6]" in line
    assert validate_batch(_pairs(30, 18), "pairwise").success  # exactly 0.6 is within bound
    assert validate_batch(_pairs(30, 20), "pairwise", ValidationConfig(max_tie_rate=0.7)).success


def test_rates_are_skipped_on_tiny_batches():
    report = validate_batch(_pairs(5, 5), "pairwise")
    assert report.success and "skip" in report.text and "min_rows_for_rates" in report.text


def test_binary_label_balance():
    def table(n_true, n_false):
        return to_table([bn(i=i, completion=A(f"c{i}"), label=i < n_true) for i in range(n_true + n_false)], "binary")

    report = validate_batch(table(30, 0), "binary")
    assert report.failures == ["label_balance"] and "[0.02, 0.98]" in report.text
    assert validate_batch(table(29, 1), "binary").success
    assert validate_batch(table(0, 30), "binary").failures == ["label_balance"]


def test_reject_share_uses_the_counts_passed_in():
    kept = _pairs(10, 0)
    report = validate_batch(kept, "pairwise", rejected=20)
    assert report.failures == ["reject_rate"] and "0.6667" in report.text and "[0, 0.5]" in report.text
    assert validate_batch(kept, "pairwise", rejected=10).success
    # everything rejected: rate rules are skipped, the reject share still stops the commit
    report = validate_batch(PAIRWISE.empty_table(), "pairwise", rejected=4)
    assert report.failures == ["reject_rate"]


def test_duplicate_record_ids_fail():
    t = _pairs(25, 0)
    dup = pa.concat_tables([t, t.slice(3, 1)])
    report = validate_batch(dup, "pairwise")
    assert report.failures == ["duplicate_record_id"]
    assert t["record_id"][3].as_py() in report.text


def test_validate_step_then_batch_on_real_data(hh_rows):
    kept, rejects = validate(to_table(hh_rows, "pairwise"), "pairwise")
    report = validate_batch(kept, "pairwise", rejected=len(rejects))
    assert report.success, report.text
    assert f"{len(rejects)} rejected" in report.text


def test_split_disjoint():
    ok = check_split_disjoint(["a", "b", "b", "c"], pa.array(["d", "e"]))
    assert ok.success and ok.failures == []
    bad = check_split_disjoint(["a", "b", "c", "c"], ["c", "x", "a", "a"])
    assert not bad.success and bad.failures == ["split_disjoint"]
    line = next(ln for ln in bad.text.splitlines() if "split_disjoint" in ln)
    assert "observed 2 " in line and "a" in line and "c" in line


def test_unknown_role_is_not_also_counted_as_an_order_break():
    kept, rejects = validate(to_table([pw(prompt=[{"role": "human", "content": "q"}])], "pairwise"), "pairwise")
    assert rejects[0]["reason"] == "invalid_role"
    assert "roles_not_alternating" not in rejects[0]["detail"] and "judged_turn_not_assistant" in rejects[0]["detail"]


def test_validate_step_counts_by_itself_and_names_its_rejects():
    rows = [pw(i=0), pw(i=1, chosen=A("dup"), rejected=A("dup")), pw(i=2, label="nope"), pw(i=3, chosen=A("ok"))]
    step = ValidateStep(name="validate_again")
    res = step(to_table(rows, "pairwise"), "pairwise")
    assert res.kept.num_rows == 2 and set(res.rejected.column("step").to_pylist()) == {"validate_again"}
    c = step.take_counts()
    assert (c.step, c.rows_in, c.rows_kept, c.rows_rejected, c.rows_duplicate) == ("validate_again", 4, 2, 2, 0)
    assert dict(c.reasons) == {"chosen_equals_rejected": 1, "invalid_label": 1}
    assert step.take_counts().rows_in == 0  # taken: the next bundle starts from zero


def test_validate_step_needs_the_shape():
    from schemas.step import StepError

    with pytest.raises(StepError, match="shape"):
        ValidateStep()(to_table([pw()], "pairwise"))


def test_validation_failed_is_a_one_line_prefmill_error_with_exit_code_1():
    from schemas.errors import PrefmillError
    from schemas.validation import ValidationFailed

    report = validate_batch(_pairs(30, 20), "pairwise")
    e = ValidationFailed([report])
    assert isinstance(e, PrefmillError) and e.exit_code == 1 and not e.transient
    assert str(e).startswith("validation failed; nothing was committed") and "tie_rate" in str(e)


def test_ingest_steps_are_registered():
    from schemas.ingest import AdaptSource
    from schemas.registry import STEPS

    assert STEPS.get("validate").obj is ValidateStep and STEPS.get("adapt").obj is AdaptSource
    step = STEPS.get("validate").obj(STEPS.get("validate").settings({"max_text_bytes": 10}))
    assert step.config.max_text_bytes == 10 and STEPS.get("validate").extra["stage"] == "ingest"
