"""The canonical preference model: one Arrow schema per shape of feedback.

Every shape shares the lineage/identity columns in ``COMMON_FIELDS``. Conversations are lists of
``{role, content}`` messages; the *prompt* is the conversation before the judged turn and a
*completion* is the judged assistant turn(s), so multi-turn contexts stay lossless.
"""

from __future__ import annotations

import pyarrow as pa

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
CONVERSATION = pa.list_(MESSAGE)

ROLES = ("system", "user", "assistant")

SHAPES = ("pairwise", "binary", "listwise", "ratings")

# Where a preference came from.
ORIGINS = ("human", "ai_judge", "reward_model", "synthetic")

# Pairwise labels: ties are kept as rows (lossless) but never exported as chosen/rejected pairs.
PAIR_LABELS = ("chosen_better", "tie")

COMMON_FIELDS = [
    pa.field("record_id", pa.string(), nullable=False),  # hash of the normalised content
    pa.field("prompt_id", pa.string(), nullable=False),  # hash of the normalised prompt
    pa.field("prompt", CONVERSATION, nullable=False),
    pa.field("origin", pa.string(), nullable=False),  # one of ORIGINS
    pa.field("annotator_id", pa.string()),
    pa.field("policy", pa.string()),  # conversion policy that produced the row, e.g. "ranking->pairs:all"
    pa.field("format", pa.string(), nullable=False),  # adapter that read it
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_row", pa.int64(), nullable=False),  # 0-based record index in the source file
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("meta", pa.string()),  # JSON object: everything the source had that has no column
]

PAIRWISE = pa.schema(
    COMMON_FIELDS
    + [
        pa.field("chosen", CONVERSATION, nullable=False),
        pa.field("rejected", CONVERSATION, nullable=False),
        pa.field("chosen_id", pa.string(), nullable=False),
        pa.field("rejected_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),  # one of PAIR_LABELS
        pa.field("margin", pa.float64()),  # score difference or probability, when known
    ]
)

BINARY = pa.schema(
    COMMON_FIELDS
    + [
        pa.field("completion", CONVERSATION, nullable=False),
        pa.field("completion_id", pa.string(), nullable=False),
        pa.field("label", pa.bool_(), nullable=False),  # True = desirable
        pa.field("score", pa.float64()),  # the score that produced the label, when any
    ]
)

LISTWISE = pa.schema(
    COMMON_FIELDS
    + [
        pa.field("completions", pa.list_(CONVERSATION), nullable=False),
        pa.field("completion_ids", pa.list_(pa.string()), nullable=False),
        pa.field("ranks", pa.list_(pa.int32())),  # 0 = best; equal ranks are ties
        pa.field("scores", pa.list_(pa.float64())),  # higher = better
    ]
)

RATING = pa.struct(
    [
        ("attribute", pa.string()),
        ("value", pa.float64()),
        ("scale_min", pa.float64()),
        ("scale_max", pa.float64()),
    ]
)

RATINGS = pa.schema(
    COMMON_FIELDS
    + [
        pa.field("completion", CONVERSATION, nullable=False),
        pa.field("completion_id", pa.string(), nullable=False),
        pa.field("ratings", pa.list_(RATING), nullable=False),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "pairwise": PAIRWISE,
    "binary": BINARY,
    "listwise": LISTWISE,
    "ratings": RATINGS,
}

# Rows that fail anywhere land here, with the raw record, never silently dropped.
QUARANTINE = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("step", pa.string(), nullable=False),  # e.g. "parse", "adapt", "validate"
        pa.field("reason", pa.string(), nullable=False),  # machine-readable rule id
        pa.field("detail", pa.string()),  # human-readable explanation
        pa.field("source_file", pa.string()),
        pa.field("source_row", pa.int64()),
        pa.field("shape", pa.string()),
        pa.field("record_id", pa.string()),
        pa.field("raw", pa.string()),  # the raw record (possibly truncated, see RAW_LIMIT)
    ]
)

# Raw records kept in the quarantine are capped so a 10 MB bad row cannot blow up the catalog.
RAW_LIMIT = 64 * 1024


def schema_for(shape: str) -> pa.Schema:
    try:
        return SCHEMAS[shape]
    except KeyError:
        raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}") from None
