"""Label-noise votes: k independent voters (LLM judges, reward models) each give P(chosen ≻ rejected) per pair.

A voter votes *against* a pair's label when it is at least ``confidence`` sure that the rejected side is
the better one: P(chosen ≻ rejected) ≤ 1 − confidence. NaN is an abstention (a judge that could not give
a verdict). Per pair, ``noise_votes`` is the number of voters against, ``noise_voters`` the number that
voted, and ``noise_flag`` says votes ≥ m. Ties carry no direction to disagree with: they are never
flagged (their ``noise_votes`` is null).

Why DEFAULT confidence 0.7: a judge's P averages both presentation orders, so a verdict that flips on
swap lands near 0.5 and must not count, while a text-mode judge that agrees in both orders gives 0 or 1
and always counts; a calibrated reward model that cannot tell a pair apart stays near 0.5. 0.7 (odds of
7:3, half way from a coin flip to certainty) counts only clear preferences, so a wrong vote needs a
voter that is confidently wrong, not one that is unsure. "At least" (≤) rather than "more than" keeps
confidence = 1 meaningful: only certain voters (P = 0) vote. Why DEFAULT m = 2: removing pairs that
several independent voters flag works better than trusting one (PrefCleanBench); with one voter m is 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.errors import CurationError

DEFAULT_CONFIDENCE = 0.7  # see the module docstring
DEFAULT_M = 2  # of k voters (k = 1: m = 1)
TIE = "tie"
REASON = "label_noise"
COLUMNS = ("noise_votes", "noise_voters", "noise_flag")
FIELDS = [
    pa.field("noise_votes", pa.int32()),  # voters against the label; null for ties
    pa.field("noise_voters", pa.int32()),  # voters that gave a probability
    pa.field("noise_flag", pa.bool_()),  # noise_votes ≥ m (never for ties)
]
REPORT_KEYS = ("origin", "format", "source_file", "annotator_id")  # flagged share per source and annotator
NONE_KEY = "(none)"  # the report's key for a null value


class NoiseError(CurationError):
    """Noise-flag parameters or input that cannot be voted on: one line, nothing started."""


def check_params(k: int, m: int | None = None, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """The m to use for ``k`` voters (default ``min(DEFAULT_M, k)``); one clear error for bad bounds."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise NoiseError(
            "no voters: give at least one judge (--judge-url with --judge-model) or reward model (--reward-model)"
        )
    if m is None:
        m = min(DEFAULT_M, k)
    if not isinstance(m, int) or isinstance(m, bool) or not 1 <= m <= k:
        raise NoiseError(f"m must be a whole number of votes in 1..{k} (the number of voters), got {m!r}")
    if not isinstance(confidence, (int, float)) or math.isnan(confidence) or not 0.5 < confidence <= 1:
        raise NoiseError(f"confidence must be in (0.5, 1] (how sure a voter against the label is), got {confidence}")
    return m


@dataclass(frozen=True)
class Votes:
    """Per pair: voters against the label, voters that voted, the flag; ``against`` per (pair, voter)."""

    votes: np.ndarray  # int32 (n,); 0 for ties (see ``tie``)
    voters: np.ndarray  # int32 (n,)
    flag: np.ndarray  # bool (n,)
    tie: np.ndarray  # bool (n,)
    against: np.ndarray  # bool (n, k); False for ties and abstentions
    voted: np.ndarray  # bool (n, k)


def as_probs(probs: Any, n: int | None = None) -> np.ndarray:
    """Voters' P(chosen ≻ rejected) as an (n, k) float64 matrix (NaN = abstained); values outside [0, 1]
    are a voter's bug and one clear error."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:
        p = p[:, None]
    if p.ndim != 2 or (n is not None and p.shape[0] != n):
        raise NoiseError(f"voter probabilities must be an (n pairs, k voters) matrix, got shape {p.shape}")
    finite = p[~np.isnan(p)]
    if ((finite < 0) | (finite > 1)).any():
        raise NoiseError("voter probabilities must lie in [0, 1] (NaN for an abstention)")
    return p


def count_votes(probs: Any, tie: Any, m: int, confidence: float = DEFAULT_CONFIDENCE) -> Votes:
    """Votes of ``probs`` (n, k) against the labels (``tie``: bool per pair) and the flags for ``m``."""
    tie = np.asarray(tie, dtype=bool)
    p = as_probs(probs, len(tie))
    m = check_params(p.shape[1], m, confidence)
    voted = ~np.isnan(p)
    with np.errstate(invalid="ignore"):
        against = voted & (p <= 1.0 - confidence) & ~tie[:, None]
    votes = against.sum(axis=1).astype(np.int32)
    return Votes(votes, voted.sum(axis=1).astype(np.int32), votes >= m, tie, against, voted)


def is_tie(labels: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(pc.equal(labels, TIE), False).to_numpy(zero_copy_only=False).astype(bool)


def vote_columns(v: Votes) -> dict[str, pa.Array]:
    """The three noise columns (``FIELDS``) of ``v``."""
    return {
        "noise_votes": pa.array(v.votes, pa.int32(), mask=v.tie),
        "noise_voters": pa.array(v.voters, pa.int32()),
        "noise_flag": pa.array(v.flag, pa.bool_()),
    }


def voter_stats(v: Votes, names: Sequence[str]) -> list[dict[str, Any]]:
    """Per voter over the non-tie pairs: pairs it scored, abstained on, voted against, and that share."""
    if len(names) != v.against.shape[1]:
        raise NoiseError(f"{len(names)} voter names for {v.against.shape[1]} voters")
    labelled = ~v.tie
    out = []
    for j, name in enumerate(names):
        scored = int((v.voted[:, j] & labelled).sum())
        against = int(v.against[:, j].sum())
        out.append(
            {
                "voter": name,
                "scored": scored,
                "abstained": int(labelled.sum()) - scored,
                "against": against,
                "against_share": against / scored if scored else None,
            }
        )
    return out


def flagged_share(table: pa.Table, keys: Sequence[str] = REPORT_KEYS) -> dict[str, dict[str, dict[str, Any]]]:
    """Per key (source columns, annotator) and value: non-tie pairs, flagged pairs and the flagged share."""
    labelled = table.filter(pc.invert(pa.array(is_tie(table.column("label")))))
    flag = pc.fill_null(labelled.column("noise_flag"), False).cast(pa.int64())
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key in keys:
        if key not in labelled.column_names:
            continue
        values = pc.fill_null(labelled.column(key).cast(pa.string()), NONE_KEY)
        groups = pa.table({"k": values, "f": flag}).group_by("k").aggregate([("f", "count"), ("f", "sum")])
        rows = sorted(zip(*(groups.column(c).to_pylist() for c in ("k", "f_count", "f_sum"))))
        out[key] = {k: {"pairs": n, "flagged": f, "share": f / n if n else None} for k, n, f in rows}
    return out
