"""Great Expectations suites for canonical rows and batches, built once per process.

Rules are declared as data (``RowRule`` / ``BatchRule``) so the reason ids, the GX expectation and
the human explanation stay in one line each. ``schemas.validation`` computes the derived columns
(cheap Arrow/numpy work) that these expectations read, then maps GX's ``unexpected_index_list``
back to rows. GX itself is imported lazily: importing it costs ~3 s, which commands that never
validate should not pay.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schemas.canonical import ORIGINS, PAIR_LABELS

Bound = float | int | str | None  # a number, or "$name" for a run-time parameter


@dataclass(frozen=True)
class RowRule:
    """One row-level rule: rows whose ``column`` fails ``kind``/``bound`` are rejected with ``reason``.

    kind: ``max`` (value <= bound), ``min`` (value >= bound) or ``set`` (value in bound).
    """

    reason: str
    column: str
    kind: str
    bound: Any
    explain: str


@dataclass(frozen=True)
class BatchRule:
    """One whole-batch rule. kind: ``mean`` (column mean within [low, high]) or ``unique``."""

    name: str
    column: str
    kind: str
    low: Bound = None
    high: Bound = None
    needs_rows: bool = False  # a rate over kept rows: meaningless (skipped) on tiny batches
    explain: str = ""


_COMMON_HEAD = [
    RowRule("missing_field", "null_required", "max", 0, "required field(s) are null"),
]
_COMMON_TAIL = [
    RowRule("invalid_origin", "origin", "set", ORIGINS, "origin not in " + "|".join(ORIGINS)),
    RowRule("empty_turn", "empty_turns", "max", 0, "message(s) with empty content"),
    RowRule("invalid_role", "unknown_roles", "max", 0, "message role(s) not system|user|assistant"),
    RowRule(
        "roles_not_alternating",
        "role_breaks",
        "max",
        0,
        "turns do not alternate between user and assistant (system allowed only first in the prompt)",
    ),
    RowRule(
        "judged_turn_not_assistant",
        "judged_ok",
        "set",
        (True,),
        "prompt must end with a user turn and each judged completion start and end with the assistant",
    ),
]
_TEXT_CAP = RowRule("text_too_long", "text_bytes", "max", "$max_text_bytes", "row text (UTF-8 bytes) over the cap")

# Order matters: a row failing several rules is rejected with the first one as its reason.
ROW_RULES: dict[str, list[RowRule]] = {
    "pairwise": _COMMON_HEAD
    + [
        RowRule(
            "chosen_equals_rejected", "same_pair", "set", (False,), "chosen and rejected are the same conversation"
        ),
        RowRule("invalid_label", "label", "set", PAIR_LABELS, "label not in " + "|".join(PAIR_LABELS)),
    ]
    + _COMMON_TAIL
    + [_TEXT_CAP],
    "binary": _COMMON_HEAD + _COMMON_TAIL + [_TEXT_CAP],
    "listwise": _COMMON_HEAD
    + [
        RowRule("too_few_completions", "n_completions", "min", 2, "a ranking needs at least 2 completions"),
        RowRule("ids_mismatch", "ids_len_ok", "set", (True,), "completion_ids length differs from completions"),
        RowRule("ranks_invalid", "has_order", "set", (True,), "neither ranks nor scores given"),
        RowRule("ranks_invalid", "ranks_len_ok", "set", (True,), "ranks length differs from completions"),
        RowRule("ranks_invalid", "scores_len_ok", "set", (True,), "scores length differs from completions"),
        RowRule("ranks_invalid", "bad_ranks", "max", 0, "rank(s) null or negative"),
        RowRule("ranks_invalid", "bad_scores", "max", 0, "score(s) null, NaN or infinite"),
    ]
    + _COMMON_TAIL
    + [_TEXT_CAP],
    "ratings": _COMMON_HEAD
    + [
        RowRule("empty_ratings", "n_ratings", "min", 1, "no ratings"),
        RowRule(
            "rating_out_of_range",
            "bad_ratings",
            "max",
            0,
            "rating value(s) missing, NaN or outside the declared [scale_min, scale_max]",
        ),
    ]
    + _COMMON_TAIL
    + [_TEXT_CAP],
}

_BATCH_COMMON = [
    BatchRule("duplicate_record_id", "record_id", "unique", 0, 0, explain="rows sharing a record_id"),
    BatchRule("reject_rate", "rejected", "mean", 0, "$max_reject_rate", explain="share of input rows rejected"),
]
BATCH_RULES: dict[str, list[BatchRule]] = {
    "pairwise": _BATCH_COMMON
    + [BatchRule("tie_rate", "is_tie", "mean", 0, "$max_tie_rate", True, "share of pairs labelled tie")],
    "binary": _BATCH_COMMON
    + [
        BatchRule(
            "label_balance",
            "label_true",
            "mean",
            "$min_true_rate",
            "$max_true_rate",
            True,
            "share of rows labelled desirable (True)",
        )
    ],
    "listwise": list(_BATCH_COMMON),
    "ratings": list(_BATCH_COMMON),
}
SPLIT_RULE = BatchRule(
    "split_disjoint", "prompt_key", "unique", 0, 0, explain="prompt keys present in both train and test"
)


def _param(bound: Bound) -> Any:
    return {"$PARAMETER": bound[1:]} if isinstance(bound, str) and bound.startswith("$") else bound


def _row_expectation(gxe: Any, rule: RowRule, index: int) -> Any:
    meta = {"rule_index": index, "reason": rule.reason}
    if rule.kind == "set":
        return gxe.ExpectColumnValuesToBeInSet(column=rule.column, value_set=list(rule.bound), meta=meta)
    key = "max_value" if rule.kind == "max" else "min_value"
    return gxe.ExpectColumnValuesToBeBetween(column=rule.column, **{key: _param(rule.bound)}, meta=meta)


def _batch_expectation(gxe: Any, rule: BatchRule, index: int) -> Any:
    meta = {"rule_index": index, "rule": rule.name}
    if rule.kind == "unique":
        return gxe.ExpectColumnValuesToBeUnique(column=rule.column, meta=meta)
    return gxe.ExpectColumnMeanToBeBetween(
        column=rule.column, min_value=_param(rule.low), max_value=_param(rule.high), meta=meta
    )


class _Gx:
    """The process-wide ephemeral GX context with one pandas asset and one suite per rule list."""

    def __init__(self) -> None:
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx, self._gxe = gx, gxe
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm on stderr
        asset = self.context.data_sources.add_pandas(name="prefmill").add_dataframe_asset(name="frame")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("whole")
        self._suites: dict[str, Any] = {}

    def suite(self, name: str, rules: list, build: Callable[[Any, Any, int], Any]) -> Any:
        if name not in self._suites:
            suite = self.context.suites.add(self._gx.ExpectationSuite(name=name))
            for i, rule in enumerate(rules):
                suite.add_expectation(build(self._gxe, rule, i))
            self._suites[name] = suite
        return self._suites[name]

    def validate(self, suite: Any, frame: Any, params: dict, result_format: dict) -> list:
        # Batch.validate (not ValidationDefinition.run) so results are not kept in the context's store.
        batch = self.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format=result_format, expectation_parameters=params)
        by_index: dict[int, Any] = {}
        for r in result.results:
            if r.exception_info.get("raised_exception"):
                raise RuntimeError(
                    f"GX expectation {r.expectation_config.type} raised: {r.exception_info.get('exception_message')}"
                )
            by_index[r.expectation_config.meta["rule_index"]] = r
        return [by_index[i] for i in range(len(by_index))]


_LOCK = threading.RLock()
_STATE: dict[str, _Gx] = {}


def _gx() -> _Gx:
    with _LOCK:
        if "gx" not in _STATE:
            _STATE["gx"] = _Gx()
        return _STATE["gx"]


# COMPLETE gives unexpected_index_list (row positions); the index query string is not needed.
_ROW_FORMAT = {"result_format": "COMPLETE", "return_unexpected_index_query": False}
_BATCH_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 5}


def run_row_suite(shape: str, frame: Any, params: dict) -> list:
    """Validate the derived-column frame of ``shape``; one GX result per ``ROW_RULES[shape]`` entry."""
    with _LOCK:
        g = _gx()
        suite = g.suite(f"rows_{shape}", ROW_RULES[shape], _row_expectation)
        return g.validate(suite, frame, params, _ROW_FORMAT)


def run_batch_suite(shape: str, frame: Any, params: dict) -> list:
    with _LOCK:
        g = _gx()
        suite = g.suite(f"batch_{shape}", BATCH_RULES[shape], _batch_expectation)
        return g.validate(suite, frame, params, _BATCH_FORMAT)


def run_split_suite(frame: Any) -> Any:
    with _LOCK:
        g = _gx()
        suite = g.suite("split_disjoint", [SPLIT_RULE], _batch_expectation)
        return g.validate(suite, frame, {}, _BATCH_FORMAT)[0]
