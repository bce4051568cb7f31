"""Validation of canonical rows: the Arrow schema first, then Great Expectations suites (DESIGN §5).

``ValidateStep`` (a ``schemas.step.Step``) derives a few cheap per-row numbers with Arrow compute /
numpy (empty turns, role order breaks, byte sizes, chosen == rejected, ...), runs the shape's GX suite
over a pandas frame of them and rejects failing rows with the first failed rule as reason.
``validate_batch`` runs the whole-batch suite (tie rate, label balance, reject share, duplicate ids)
that stops a commit (``ValidationFailed``). Rule definitions live in ``schemas.gx_suites``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from schemas import gx_suites
from schemas.canonical import ROLES, SCHEMAS, SHAPES, schema_for
from schemas.errors import PrefmillError
from schemas.registry import STEPS
from schemas.step import Reject, Step, StepError, StepResult, rejected_table

STEP = "validate"


@dataclass(frozen=True)
class ValidationConfig:
    """Thresholds for row and batch validation (defaults in brackets)."""

    max_text_bytes: int = 262_144  # [256 KiB] UTF-8 bytes over all messages of one row (~64k tokens)
    max_tie_rate: float = 0.6  # [0.6] share of pairwise rows labelled tie
    min_true_rate: float = 0.02  # [0.02] binary: lowest share of label=True
    max_true_rate: float = 0.98  # [0.98] binary: highest share of label=True
    max_reject_rate: float = 0.5  # [0.5] share of input rows the row checks rejected
    min_rows_for_rates: int = 20  # [20] tie rate / label balance are skipped below this many kept rows
    # [True] Ingest turns this off: repeated source records are expected there and are counted as
    # duplicates by the warehouse commit, not treated as a broken batch.
    unique_record_ids: bool = True

    def params(self) -> dict:
        return asdict(self)


@dataclass
class BatchReport:
    success: bool
    failures: list[str] = field(default_factory=list)  # names of the failed rules
    text: str = ""  # readable report: rule, observed value, bound

    def __str__(self) -> str:
        return self.text


class NothingKept(PrefmillError):
    """Every row a run read was rejected: it publishes nothing and says so (never a quiet ``no_change``)."""

    exit_code = 1


class ValidationFailed(PrefmillError):
    """A whole-batch expectation failed: nothing was published."""

    exit_code = 1

    def __init__(self, reports: list[BatchReport]):
        self.reports = reports
        super().__init__("validation failed; nothing was committed:\n" + "\n".join(r.text for r in reports))


# ---------------------------------------------------------------------------------------- schema


def _conform(table: pa.Table, shape: str) -> tuple[pa.Table | None, list[str]]:
    """Cast the shape's columns (canonical order, extra columns kept after them); problems as text."""
    schema = schema_for(shape)
    problems, arrays = [], []
    for f in schema:
        if f.name not in table.column_names:
            problems.append(f"column {f.name!r} is missing")
            continue
        col = table[f.name]
        try:
            arrays.append(col if col.type == f.type else col.cast(f.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
            problems.append(f"column {f.name!r} ({col.type}) cannot be cast to {f.type}: {e}")
    if problems:
        return None, problems
    extra = [n for n in table.column_names if n not in schema.names]
    fields = list(schema) + [table.schema.field(n) for n in extra]
    return pa.Table.from_arrays(arrays + [table[n] for n in extra], schema=pa.schema(fields)), []


# ------------------------------------------------------------------------------- derived columns

_ROLE_SET = pa.array(ROLES)  # codes: system=0, user=1, assistant=2, unknown=-1
_SYSTEM, _USER, _ASSISTANT = 0, 1, 2


def _lengths(lists: pa.Array) -> np.ndarray:
    return pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False).astype(np.int64)


def _per_row(parent: np.ndarray, n: int, mask: np.ndarray | None = None, weights: Any = None) -> np.ndarray:
    idx = parent if mask is None else parent[mask]
    w = None if weights is None else (weights if mask is None else weights[mask])
    return np.bincount(idx, weights=w, minlength=n).astype(np.int64)


@dataclass
class _Conv:
    """Per-conversation numbers for an array of conversations."""

    n_msgs: np.ndarray
    empty: np.ndarray
    unknown: np.ndarray
    breaks: np.ndarray
    first: np.ndarray  # role code of the first message, -2 when empty
    last: np.ndarray
    nbytes: np.ndarray


def _conversations(conv: pa.Array, *, prompt: bool) -> _Conv:
    n = len(conv)
    lengths = _lengths(conv)
    msgs = pc.list_flatten(conv)
    parent = pc.list_parent_indices(conv).to_numpy().astype(np.int64)
    role, content = pc.struct_field(msgs, "role"), pc.struct_field(msgs, "content")
    code = pc.fill_null(pc.index_in(role, value_set=_ROLE_SET), -1).to_numpy(zero_copy_only=False)
    nbytes = pc.fill_null(pc.binary_length(content), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    blank = pc.fill_null(pc.utf8_is_space(content), True).to_numpy(zero_copy_only=False)  # null → blank
    empty = (nbytes == 0) | blank
    starts = np.cumsum(lengths) - lengths  # flattened values are the non-null lists back to back
    k = np.arange(len(code)) - starts[parent]  # position of each message in its conversation
    has = lengths > 0
    first, last = np.full(n, -2), np.full(n, -2)
    first[has], last[has] = code[starts[has]], code[starts[has] + lengths[has] - 1]
    if prompt:
        # Optional system opener, then turns that alternate. Either role may open: multi-turn logs
        # (e.g. topical chat histories, an assistant greeting) start with the assistant; the judged-turn
        # rule separately requires the prompt to end with the user.
        prev = np.r_[-9, code[:-1]]
        ok = (k == 0) | ((code != prev) & (code != _SYSTEM))
    else:  # a judged completion: assistant, user, assistant, ...
        ok = code == np.where(k % 2 == 0, _ASSISTANT, _USER)
    ok |= code < 0  # unknown roles are their own rule, not counted twice
    return _Conv(
        lengths,
        _per_row(parent, n, empty),
        _per_row(parent, n, code < 0),
        _per_row(parent, n, ~ok),
        first,
        last,
        _per_row(parent, n, None, nbytes),
    )


def _same_conversation(a: pa.Array, b: pa.Array, ca: _Conv, cb: _Conv) -> np.ndarray:
    """Content equality of two conversation columns, compared only where sizes already match."""
    cand = np.flatnonzero((ca.n_msgs == cb.n_msgs) & (ca.nbytes == cb.nbytes))
    same = np.zeros(len(a), dtype=bool)
    if len(cand) == 0:
        return same
    ta, tb = a.take(pa.array(cand)), b.take(pa.array(cand))
    ma, mb = pc.list_flatten(ta), pc.list_flatten(tb)
    parent = pc.list_parent_indices(ta).to_numpy().astype(np.int64)
    eq = pc.and_(
        pc.equal(pc.struct_field(ma, "role"), pc.struct_field(mb, "role")),
        pc.equal(pc.struct_field(ma, "content"), pc.struct_field(mb, "content")),
    )
    differ = ~pc.fill_null(eq, False).to_numpy(zero_copy_only=False)
    same[cand] = _per_row(parent, len(cand), differ) == 0
    return same


def _common(batch: pa.RecordBatch, shape: str, completions: list[_Conv]) -> dict:
    """Columns every shape has: nulls, origin, turns, roles, judged turn, text size."""
    p = _conversations(batch.column("prompt"), prompt=True)
    required = [f.name for f in SCHEMAS[shape] if not f.nullable]
    nulls = sum(batch.column(c).is_null().to_numpy(zero_copy_only=False).astype(np.int64) for c in required)
    judged = p.last == _USER
    for c in completions:
        judged &= (c.first == _ASSISTANT) & (c.last == _ASSISTANT)
    return {
        "null_required": nulls,
        "origin": batch.column("origin").to_pandas(),
        "empty_turns": p.empty + sum(c.empty for c in completions),
        "unknown_roles": p.unknown + sum(c.unknown for c in completions),
        "role_breaks": p.breaks + sum(c.breaks for c in completions),
        "judged_ok": judged,
        "text_bytes": p.nbytes + sum(c.nbytes for c in completions),
    }


def _derive_pairwise(batch: pa.RecordBatch) -> dict:
    ch, rj = batch.column("chosen"), batch.column("rejected")
    c, r = _conversations(ch, prompt=False), _conversations(rj, prompt=False)
    return {
        **_common(batch, "pairwise", [c, r]),
        "same_pair": _same_conversation(ch, rj, c, r),
        "label": batch.column("label").to_pandas(),
    }


def _derive_binary(batch: pa.RecordBatch) -> dict:
    return _common(batch, "binary", [_conversations(batch.column("completion"), prompt=False)])


def _derive_listwise(batch: pa.RecordBatch) -> dict:
    comps = batch.column("completions")
    n, n_comp = len(batch), _lengths(comps)
    inner = _conversations(pc.list_flatten(comps), prompt=False)  # one entry per completion
    owner = pc.list_parent_indices(comps).to_numpy().astype(np.int64)
    bad_judged = _per_row(owner, n, ~((inner.first == _ASSISTANT) & (inner.last == _ASSISTANT)))
    per_row = _Conv(
        n_comp,
        _per_row(owner, n, None, inner.empty),
        _per_row(owner, n, None, inner.unknown),
        _per_row(owner, n, None, inner.breaks),
        np.where(bad_judged > 0, -1, _ASSISTANT),
        np.where(bad_judged > 0, -1, _ASSISTANT),
        _per_row(owner, n, None, inner.nbytes),
    )
    ranks, scores = batch.column("ranks"), batch.column("scores")
    r_vals, s_vals = pc.list_flatten(ranks), pc.list_flatten(scores)
    bad_r = pc.fill_null(pc.less(r_vals, 0), True).to_numpy(zero_copy_only=False)
    bad_s = ~pc.fill_null(pc.is_finite(s_vals), False).to_numpy(zero_copy_only=False)
    r_par = pc.list_parent_indices(ranks).to_numpy().astype(np.int64)
    s_par = pc.list_parent_indices(scores).to_numpy().astype(np.int64)
    r_null = ranks.is_null().to_numpy(zero_copy_only=False)
    s_null = scores.is_null().to_numpy(zero_copy_only=False)
    return {
        **_common(batch, "listwise", [per_row]),
        "n_completions": n_comp,
        "ids_len_ok": _lengths(batch.column("completion_ids")) == n_comp,
        "has_order": ~(r_null & s_null),
        "ranks_len_ok": r_null | (_lengths(ranks) == n_comp),
        "scores_len_ok": s_null | (_lengths(scores) == n_comp),
        "bad_ranks": _per_row(r_par, n, bad_r),
        "bad_scores": _per_row(s_par, n, bad_s),
    }


def _derive_ratings(batch: pa.RecordBatch) -> dict:
    ratings = batch.column("ratings")
    n, items = len(batch), pc.list_flatten(ratings)
    value = pc.struct_field(items, "value")
    lo, hi = pc.struct_field(items, "scale_min"), pc.struct_field(items, "scale_max")
    ok = pc.and_(
        pc.fill_null(pc.is_finite(value), False),
        pc.and_(
            pc.fill_null(pc.greater_equal(value, lo), True),  # no declared bound → unbounded
            pc.fill_null(pc.less_equal(value, hi), True),
        ),
    )
    ok = pc.and_(ok, pc.fill_null(pc.less_equal(lo, hi), True))
    parent = pc.list_parent_indices(ratings).to_numpy().astype(np.int64)
    completion = _conversations(batch.column("completion"), prompt=False)
    return {
        **_common(batch, "ratings", [completion]),
        "n_ratings": _lengths(ratings),
        "bad_ratings": _per_row(parent, n, ~ok.to_numpy(zero_copy_only=False)),
    }


_DERIVE = {
    "pairwise": _derive_pairwise,
    "binary": _derive_binary,
    "listwise": _derive_listwise,
    "ratings": _derive_ratings,
}


def derived_frame(table: pa.Table, shape: str) -> pd.DataFrame:
    """The per-row numbers the shape's GX suite reads (index = row position in ``table``)."""
    parts = [pd.DataFrame(_DERIVE[shape](b)) for b in table.to_batches() if len(b)]
    if not parts:
        return pd.DataFrame(_DERIVE[shape](pa.RecordBatch.from_pylist([], schema=table.schema)))
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


# ------------------------------------------------------------------------------------ row checks


def _reject(row: dict, shape: str, reason: str, detail: str, step: str) -> Reject:
    return Reject(
        step=step,
        reason=reason,
        detail=detail,
        source_file=_typed(row.get("source_file"), str),
        source_row=_typed(row.get("source_row"), int),
        shape=shape,
        record_id=_typed(row.get("record_id"), str),
        raw=row,
    )


def _typed(value: Any, typ: type) -> Any:
    """A lineage value of a table that failed the schema may have any type; the raw row keeps it."""
    return value if isinstance(value, typ) and not isinstance(value, bool) else None


def _schema_rejects(table: pa.Table, shape: str, problems: list[str], step: str) -> list[Reject]:
    detail = f"not a {shape} table: " + "; ".join(problems)
    return [_reject(row, shape, "schema_mismatch", detail, step) for row in table.to_pylist()]


def _explain(rule: gx_suites.RowRule, value: Any, config: ValidationConfig) -> str:
    bound = (
        getattr(config, rule.bound[1:]) if isinstance(rule.bound, str) and rule.bound.startswith("$") else rule.bound
    )
    if isinstance(value, (np.generic,)):
        value = value.item()
    return f"{rule.reason}: {rule.explain} ({rule.column}={value!r}, expected {rule.kind} {bound!r})"


def _check_rows(
    table: pa.Table, shape: str, config: ValidationConfig | None = None, step: str = STEP
) -> tuple[pa.Table, list[Reject]]:
    """Rows that pass the Arrow schema and the shape's GX suite, and a Reject for every other row.

    ``len(kept) + len(rejects) == table.num_rows``. A row failing several rules is rejected once, with
    the first rule (suite order) as ``reason`` and every failed rule in ``detail``.
    """
    config = config or ValidationConfig()
    schema = schema_for(shape)
    conformed, problems = _conform(table, shape)
    if conformed is None:
        return schema.empty_table(), _schema_rejects(table, shape, problems, step)
    if conformed.num_rows == 0:
        return conformed, []
    frame = derived_frame(conformed, shape)
    rules = gx_suites.ROW_RULES[shape]
    results = gx_suites.run_row_suite(shape, frame, config.params())
    failed = np.zeros((len(rules), conformed.num_rows), dtype=bool)
    for i, res in enumerate(results):
        if not res.success:
            failed[i, np.asarray(res.result["unexpected_index_list"], dtype=np.int64)] = True
    bad = np.asarray(failed.any(axis=0))
    if not bad.any():
        return conformed, []
    bad_idx = np.flatnonzero(bad)
    rows = conformed.take(pa.array(bad_idx)).to_pylist()
    rejects = []
    for row, j in zip(rows, bad_idx):  # per rejected row only: building its detail text
        hit = [rules[k] for k in np.flatnonzero(failed[:, j])]
        detail = "; ".join(_explain(r, frame[r.column].iat[int(j)], config) for r in hit)
        if hit[0].reason == "missing_field":
            nulls = [f.name for f in schema if not f.nullable and row.get(f.name) is None]
            detail = f"null: {', '.join(nulls)}; " + detail
        rejects.append(_reject(row, shape, hit[0].reason, detail, step))
    return _keep(conformed, bad), rejects


def _keep(table: pa.Table, bad: np.ndarray) -> pa.Table:
    """Rows not in ``bad``: zero-copy slices between rejected rows unless that makes tiny chunks."""
    edges = np.flatnonzero(np.diff(np.r_[1, bad.astype(np.int8), 1]))  # alternating run starts/ends
    runs = [(a, b) for a, b in zip(edges[::2], edges[1::2])]  # [start, stop) of each good run
    if len(runs) * 100 > table.num_rows:  # average run < 100 rows: one compact copy is better
        return table.filter(pa.array(~bad))
    return pa.concat_tables([table.slice(a, b - a) for a, b in runs]) if runs else table.slice(0, 0)


# ---------------------------------------------------------------------------------- batch checks


def _fmt(x: Any) -> str:
    return "-" if x is None else (f"{x:.4g}" if isinstance(x, float) else str(x))


def _report(title: str, lines: list[tuple[str, bool | None, str, str, str]]) -> BatchReport:
    """lines: (rule, passed or None when skipped, observed, bound, explanation)."""
    failures = [name for name, ok, *_ in lines if ok is False]
    status = "PASSED" if not failures else f"FAILED ({len(failures)} of {len(lines)} rules)"
    out = [f"{title}: {status}"]
    for name, ok, observed, bound, explain in lines:
        mark = "skip" if ok is None else ("ok" if ok else "FAIL")
        out.append(f"  [{mark:>4}] {name:<20} observed {observed:<12} bound {bound:<14} {explain}")
    return BatchReport(success=not failures, failures=failures, text="\n".join(out))


def _batch_frame(table: pa.Table, shape: str, rejected: int) -> pd.DataFrame:
    # One row per input row: kept rows first, then `rejected` rows that only count toward reject_rate
    # (NaN/None elsewhere, which GX's mean and uniqueness ignore).
    pad = pa.nulls(rejected, pa.string())
    rid = pa.concat_arrays([c for c in table["record_id"].cast(pa.string()).chunks] + [pad])
    frame = {"record_id": rid.to_pandas(), "rejected": np.r_[np.zeros(table.num_rows), np.ones(rejected)]}
    filler = np.full(rejected, np.nan)
    if shape == "pairwise":
        tie = pc.equal(table["label"], "tie").to_numpy(zero_copy_only=False).astype(float)
        frame["is_tie"] = np.r_[tie, filler]
    if shape == "binary":
        frame["label_true"] = np.r_[table["label"].to_numpy(zero_copy_only=False).astype(float), filler]
    return pd.DataFrame(frame)


def validate_batch(
    table: pa.Table, shape: str, config: ValidationConfig | None = None, *, rejected: int = 0
) -> BatchReport:
    """Whole-batch GX rules that stop a commit: tie rate, label balance, reject share, duplicate ids.

    ``table`` is the kept table from ``ValidateStep``; ``rejected`` the number of rows it rejected.
    """
    config = config or ValidationConfig()
    kept = table.num_rows
    title = f"batch validation ({shape}: {kept + rejected} rows, {kept} kept, {rejected} rejected)"
    if kept + rejected == 0:
        return BatchReport(True, [], f"{title}: PASSED (empty batch, nothing to check)")
    if "record_id" not in table.column_names or (shape in ("pairwise", "binary") and "label" not in table.column_names):
        raise ValueError(f"validate_batch needs a {shape} table (run ValidateStep first)")
    results = gx_suites.run_batch_suite(shape, _batch_frame(table, shape, rejected), config.params())
    lines = []
    for rule, res in zip(gx_suites.BATCH_RULES[shape], results):
        if rule.kind == "unique":
            dups = res.result.get("partial_unexpected_list") or []
            observed, bound = res.result.get("unexpected_count", 0), "0"
            explain = rule.explain + (f" (e.g. {', '.join(map(str, dict.fromkeys(dups)))})" if dups else "")
        else:
            observed = res.result.get("observed_value")
            lo, hi = (getattr(config, b[1:]) if isinstance(b, str) else b for b in (rule.low, rule.high))
            bound, explain = f"[{_fmt(lo)}, {_fmt(hi)}]", rule.explain
        ok: bool | None = bool(res.success)
        if rule.kind == "unique" and not config.unique_record_ids:
            ok, explain = None, f"{explain} (skipped: duplicates are deduplicated and counted at commit)"
        if rule.needs_rows and kept < config.min_rows_for_rates:
            ok, explain = (
                None,
                f"{explain} (skipped: {kept} kept rows < min_rows_for_rates {config.min_rows_for_rates})",
            )
        lines.append((rule.name, ok, _fmt(observed), bound, explain))
    return _report(title, lines)


def _keys(keys: Iterable) -> pd.Series:
    if isinstance(keys, (pa.Array, pa.ChunkedArray)):
        keys = keys.to_pylist()
    return pd.Series(list(keys), dtype=object).dropna().drop_duplicates()


def check_split_disjoint(train_keys: Iterable, test_keys: Iterable) -> BatchReport:
    """GX check that no prompt key is in both splits (each split's keys are de-duplicated first)."""
    train, test = _keys(train_keys), _keys(test_keys)
    frame = pd.DataFrame({"prompt_key": pd.concat([train, test], ignore_index=True)})
    title = f"split check ({len(train)} train keys, {len(test)} test keys)"
    res = gx_suites.run_split_suite(frame)
    overlap = (res.result.get("unexpected_count") or 0) // 2  # each shared key appears once per split
    examples = list(dict.fromkeys(res.result.get("partial_unexpected_list") or []))
    explain = gx_suites.SPLIT_RULE.explain + (f" (e.g. {', '.join(map(str, examples))})" if examples else "")
    return _report(title, [(gx_suites.SPLIT_RULE.name, bool(res.success), str(overlap), "0", explain)])


__all__ = [
    "ValidationConfig",
    "BatchReport",
    "ValidateStep",
    "ValidationFailed",
    "validate_batch",
    "check_split_disjoint",
    "derived_frame",
]


@STEPS.register("validate", config=ValidationConfig, shapes=SHAPES, extra={"stage": "ingest"})
class ValidateStep(Step):
    """Arrow schema cast + the shape's GX row suite; a failing row is rejected with the first rule it broke."""

    name = STEP

    def __init__(self, config: ValidationConfig | None = None, name: str | None = None):
        if name:
            self.name = name  # before the base class names the counts after it
        super().__init__()
        self.config = config

    def process(self, batch: pa.Table) -> StepResult:
        if self.shape is None:
            raise StepError("validate needs the batch's shape (the executor passes it)")
        kept, rejects = _check_rows(batch, self.shape, self.config, self.step_name)
        return StepResult(kept, rejected_table(rejects))
