"""The special-token check: a literal </s> or <|im_end|> in any turn rejects the row, with where it was."""

import json

import pytest

from schemas import records
from schemas.adapters import get_adapter
from schemas.checks import default_checks
from schemas.checks.special_tokens import SpecialTokenCheck, SpecialTokenConfig
from schemas.registry import STEPS


def _conv(*turns):
    return [{"role": r, "content": c} for r, c in turns]


def _pairs(texts):
    rows = [
        records.pairwise(
            prompt=_conv(("user", f"q{i}")),
            chosen=_conv(("assistant", c)),
            rejected=_conv(("assistant", f"no {i}")),
            origin="human",
        )
        for i, c in enumerate(texts)
    ]
    for i, r in enumerate(rows):
        r.update(format="test", source_file="t.jsonl", source_row=i, run_id="r")
    return records.to_table(rows, "pairwise")


def test_rows_with_a_literal_special_token_are_rejected_with_the_token_and_column():
    table = _pairs(["fine", "ends early</s> then more", "chatml <|im_end|> leak", "a <s> tag is not a token"])
    step = SpecialTokenCheck()
    res = step(table, "pairwise")
    assert res.kept.column("source_row").to_pylist() == [0, 3]
    rej = res.rejected.to_pylist()
    assert [r["source_row"] for r in rej] == [1, 2]
    assert {r["reason"] for r in rej} == {"special_token"}
    assert "chosen" in rej[0]["detail"] and "'</s>'" in rej[0]["detail"]
    assert "'<|im_end|>'" in rej[1]["detail"]
    assert (step.counts.rows_in, step.counts.rows_kept, step.counts.rows_rejected) == (4, 2, 2)


def test_nested_listwise_completions_and_custom_tokens():
    row = records.listwise(
        prompt=_conv(("user", "q")),
        completions=[_conv(("assistant", "a")), _conv(("assistant", "b [END] c"))],
        ranks=[0, 1],
        origin="human",
    )
    row.update(format="t", source_file="f", source_row=0, run_id="r")
    table = records.to_table([row], "listwise")
    assert SpecialTokenCheck()(table, "listwise").kept.num_rows == 1
    res = SpecialTokenCheck(SpecialTokenConfig(tokens=("[END]",)))(table, "listwise")
    assert res.kept.num_rows == 0 and "completions" in res.rejected.column("detail")[0].as_py()


def test_the_real_llamafactory_kto_row_with_eos_is_caught(data_dir):
    items = json.loads((data_dir / "llamafactory_kto_en_demo/kto_en_demo.json").read_text())
    adapter = get_adapter("sharegpt")
    rows = []
    for i, obj in enumerate(items):
        for _shape, row in adapter.adapt(obj):
            row.update(format="sharegpt", source_file="kto", source_row=i, run_id="r")
            rows.append(row)
    res = SpecialTokenCheck()(records.to_table(rows, "binary"), "binary")
    assert res.rejected.column("source_row").to_pylist() == [139]
    assert res.kept.num_rows == len(rows) - 1


def test_registered_as_a_default_ingest_check():
    entry = STEPS.get("special_tokens")
    assert entry.extra == {"stage": "ingest", "default": True}
    assert any(isinstance(s, SpecialTokenCheck) for s in default_checks())
    with pytest.raises(ValueError, match="unknown special_tokens setting"):
        entry.settings({"token": ["x"]})
