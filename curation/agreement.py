"""How far a judge agrees with human labels: the numbers a judge audit reports (numpy over whole arrays).

A gold set is human-labelled pairwise rows. Rows are grouped into *items*: one prompt and one unordered
pair of responses, so the rows several annotators gave the same pair (PandaLM: three) are one item.
Each item has a fixed orientation (side ``a`` = the response with the smaller id, side ``b`` the other),
and every label is read in it: +1 (a better), -1 (b better), 0 (tie). A fixed orientation is what makes
κ meaningful for sets whose ``chosen`` is always the human's pick (hh-rlhf): in the chosen/rejected
orientation the human label would be a single class.

The judge gives, per row, P(chosen ≻ rejected) with both presentation orders averaged, and the two
orders' own probabilities (``p_ab``: chosen shown first; ``p_ba``: chosen shown second). Its decision
is the side of ½; its three-class verdict follows MT-Bench: a side when both orders pick it, a tie when
they disagree (a position flip). A reward model has no positions: pass ``p_ab = p_ba = p``.

Reported (``report``): accuracy without ties (human ties left out; a judge at exactly ½ counts half) and
with ties (three classes), also over the items' majority; Cohen's κ against the majority label (items
with a strict plurality; three classes; the gate's κ) and against each annotator; the human–human κ
(mean over annotator pairs, on the items both labelled) as the ceiling; swap consistency (both orders
pick the same response); position bias P(first shown wins); length bias (the judge's P(longer wins)
against the humans' rate); self-preference (rows where exactly one side was written by the judge's own
model, best effort from the row's meta); calibration (ECE over confidence max(p, 1 − p), equal-width
bins on [½, 1], and the reliability-curve points). Judge-only numbers (swap, position, length) are per
item, so an item is not weighted by how many annotators it had. Rows without a verdict are left out of
every number and counted (``coverage``); ``accuracy_unjudged_as_wrong`` counts them as misses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from curation.errors import CurationError
from curation.recipes import text_array

ECE_BINS = 10  # DEFAULT: as curation.reward.ece
_MISSING = 99  # "no label" in the item x annotator matrix
CLASSES = (-1, 0, 1)
_NEEDS = ("prompt_id", "chosen_id", "rejected_id", "label", "origin", "chosen", "rejected")


class GoldSetError(CurationError):
    """A dataset that cannot serve as a gold set (no human labels, one class only): one line."""


@dataclass
class Gold:
    """A gold set's rows as arrays (row order = the table's)."""

    item: np.ndarray  # (n,) int64: the row's item
    human: np.ndarray  # (n,) int8: the label in the item's orientation (+1 a, -1 b, 0 tie)
    flipped: np.ndarray  # (n,) bool: the row's chosen is the item's side b
    annotator: np.ndarray  # (n,) object: annotator id ("" when none)
    len_chosen: np.ndarray  # (n,) int64: characters of the chosen response
    len_rejected: np.ndarray
    self_side: np.ndarray  # (n,) int8: +1 chosen written by the judge's model, -1 rejected, 0 neither / unknown
    n_items: int
    excluded: dict = field(default_factory=dict)  # rows left out of the gold set, by why


def human_rows(table: pa.Table, name: str = "the gold set") -> tuple[pa.Table, dict]:
    """The human-labelled pairwise rows of ``table`` and what was left out; one line when none are usable."""
    missing = [c for c in _NEEDS if c not in table.column_names]
    if missing:
        raise GoldSetError(f"{name} is not pairwise data (no column {', '.join(missing)})")
    if table.num_rows == 0:
        raise GoldSetError(f"{name} has no pairwise rows; an audit needs human-labelled pairs")
    human = pc.fill_null(pc.equal(table.column("origin"), "human"), False)
    labelled = pc.fill_null(pc.is_in(table.column("label"), pa.array(["chosen_better", "tie"])), False)
    out = table.filter(pc.and_(human, labelled))
    n_human = int(pc.sum(human).as_py() or 0)
    excluded = {k: v for k, v in (("not_human", table.num_rows - n_human), ("no_label", n_human - out.num_rows)) if v}
    if out.num_rows == 0:
        origins = sorted({str(o) for o in pc.unique(table.column("origin")).to_pylist()})
        raise GoldSetError(
            f"{name} has no human labels (origins: {', '.join(origins)}); audit against a human-labelled dataset"
        )
    return out, excluded


def gold_from_table(table: pa.Table, judge_model: str | None = None, name: str = "the gold set") -> Gold:
    """Items, orientations and labels of human pairwise rows (``human_rows`` first); one line when the
    labels have a single class, since no agreement statistic means anything then."""
    n = table.num_rows
    chosen_id = table.column("chosen_id").to_numpy(zero_copy_only=False).astype(str)
    rejected_id = table.column("rejected_id").to_numpy(zero_copy_only=False).astype(str)
    prompt_id = table.column("prompt_id").to_numpy(zero_copy_only=False).astype(str)
    flipped = chosen_id > rejected_id
    a = np.where(flipped, rejected_id, chosen_id)
    b = np.where(flipped, chosen_id, rejected_id)
    keys = np.char.add(np.char.add(np.char.add(prompt_id, "\x1f"), a), np.char.add("\x1f", b))
    _, item = np.unique(keys, return_inverse=True)
    tie = pc.equal(table.column("label"), "tie").to_numpy(zero_copy_only=False)
    human = np.where(tie, 0, np.where(flipped, -1, 1)).astype(np.int8)
    classes = sorted(set(np.unique(human).tolist()))
    if len(classes) < 2:
        what = {0: "a tie", 1: "the same side", -1: "the same side"}[classes[0]]
        raise GoldSetError(
            f"{name}: every human label is {what} ({n} rows), one class only; an audit needs at least two"
        )
    ann = table.column("annotator_id").cast(pa.string()) if "annotator_id" in table.column_names else pa.nulls(n)
    annotator = np.asarray(pc.fill_null(ann, "").to_pylist(), dtype=object)
    lens = [
        pc.utf8_length(text_array(table, c)).to_numpy(zero_copy_only=False).astype(np.int64)
        for c in ("chosen", "rejected")
    ]
    return Gold(
        item=item.astype(np.int64),
        human=human,
        flipped=flipped,
        annotator=annotator,
        len_chosen=lens[0],
        len_rejected=lens[1],
        self_side=self_sides(table, judge_model) if judge_model else np.zeros(n, np.int8),
        n_items=int(item.max()) + 1 if n else 0,
    )


# ------------------------------------------------------------------------------ self-preference


def _norm(name: str) -> str:
    return str(name).strip().lower().rsplit("/", 1)[-1].split("@", 1)[0]


def same_model(judge: str, other: str | None) -> bool:
    """Best effort: the same name after dropping a path / org prefix and an ``@revision``, or one name
    containing the other (``llama-7b`` in ``llama-7b-instruct``)."""
    if not other:
        return False
    j, o = _norm(judge), _norm(other)
    if not j or not o:
        return False
    return j == o or (min(len(j), len(o)) >= 4 and (j in o or o in j))


def side_models(meta: dict) -> tuple[str | None, str | None]:
    """(model that wrote chosen, model that wrote rejected) from a row's meta, when it says so:
    ``chosen_model`` / ``rejected_model``, or PandaLM's ``cmp_key`` ("<model 1>_<model 2>") with
    ``chosen_position``."""
    for c, r in (("chosen_model", "rejected_model"), ("model_chosen", "model_rejected")):
        if meta.get(c) or meta.get(r):
            return meta.get(c), meta.get(r)
    key, pos = meta.get("cmp_key"), meta.get("chosen_position")
    if isinstance(key, str) and pos in (1, 2):
        parts = key.split("_")
        if len(parts) == 2:
            return parts[pos - 1], parts[2 - pos]
    return None, None


def self_sides(table: pa.Table, judge_model: str) -> np.ndarray:
    """+1 where only chosen was written by ``judge_model``, -1 where only rejected was, else 0."""
    n = table.num_rows
    out = np.zeros(n, np.int8)
    if "meta" not in table.column_names or not judge_model:
        return out
    meta = table.column("meta")
    # Only rows whose meta names models at all are parsed (JSON has no Arrow kernel).
    hint = pc.fill_null(pc.match_substring_regex(meta, "model|cmp_key"), False).to_numpy(zero_copy_only=False)
    texts = meta.to_pylist()
    for i in np.flatnonzero(hint):
        try:
            m = orjson.loads(texts[i])
        except orjson.JSONDecodeError:
            continue
        if not isinstance(m, dict):
            continue
        c, r = side_models(m)
        mc, mr = same_model(judge_model, c), same_model(judge_model, r)
        out[i] = 1 if mc and not mr else -1 if mr and not mc else 0
    return out


# ------------------------------------------------------------------------------ statistics


def cohen_kappa(x: Any, y: Any) -> float | None:
    """Cohen's κ of two label arrays (any classes); None when undefined (no rows, or both constant and equal)."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) == 0:
        return None
    po = float(np.mean(x == y))
    cats = np.union1d(x, y)
    pe = float(sum(np.mean(x == c) * np.mean(y == c) for c in cats))
    if pe >= 1.0 - 1e-12:
        return None
    return (po - pe) / (1.0 - pe)


def _num(x: Any) -> float | None:
    """A JSON-safe float (None for NaN / missing)."""
    if x is None:
        return None
    x = float(x)
    return None if not np.isfinite(x) else x


def _mean(x: np.ndarray) -> float | None:
    return _num(np.mean(x)) if len(x) else None


def _decided(correct: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """1 right, 0 wrong, ½ for a judge exactly at ½."""
    return np.where(tie, 0.5, correct.astype(np.float64))


def calibration(p_human: np.ndarray, bins: int = ECE_BINS) -> dict:
    """ECE and the reliability curve of P(the human's pick) over confidence max(p, 1 − p) ∈ [½, 1]."""
    p = np.asarray(p_human, dtype=np.float64)
    if len(p) == 0:
        return {"ece": None, "bins": bins, "curve": [], "log_loss": None, "n": 0}
    conf = np.maximum(p, 1.0 - p)
    correct = _decided(p > 0.5, p == 0.5)
    b = np.minimum(((conf - 0.5) * 2 * bins).astype(np.int64), bins - 1)
    cnt = np.bincount(b, minlength=bins)
    sconf = np.bincount(b, weights=conf, minlength=bins)
    sacc = np.bincount(b, weights=correct, minlength=bins)
    curve = [
        {
            "lo": 0.5 + k / (2 * bins),
            "hi": 0.5 + (k + 1) / (2 * bins),
            "n": int(cnt[k]),
            "confidence": float(sconf[k] / cnt[k]),
            "accuracy": float(sacc[k] / cnt[k]),
        }
        for k in np.flatnonzero(cnt)
    ]
    eps = 1e-6
    return {
        "ece": float(np.abs(sconf - sacc).sum() / len(p)),
        "bins": bins,
        "curve": curve,
        "log_loss": float(-np.mean(np.log(np.clip(p, eps, 1 - eps)))),
        "n": int(len(p)),
    }


def _first_per_item(item: np.ndarray, mask: np.ndarray, n_items: int) -> np.ndarray:
    """Index of the first row of each item among ``mask`` rows (-1 where none)."""
    idx = np.flatnonzero(mask)
    first = np.full(n_items, -1, np.int64)
    if len(idx):
        items, pos = np.unique(item[idx], return_index=True)
        first[items] = idx[pos]
    return first


def _majority(item: np.ndarray, human: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """(majority label per item, whether it is a strict plurality) over every human row."""
    counts = np.zeros((n_items, 3), np.int64)
    np.add.at(counts, (item, human.astype(np.int64) + 1), 1)
    top = counts.argmax(axis=1)
    srt = np.sort(counts, axis=1)
    return (top - 1).astype(np.int8), srt[:, -1] > srt[:, -2]


def human_ceiling(gold: Gold) -> dict | None:
    """Cohen's κ between every two annotators on the items both labelled, and their mean (the ceiling a
    judge's κ per annotator compares with); None without two annotators sharing an item."""
    names = sorted({a for a in gold.annotator.tolist() if a})
    if len(names) < 2:
        return None
    col = {a: i for i, a in enumerate(names)}
    has = gold.annotator != ""
    mat = np.full((gold.n_items, len(names)), _MISSING, np.int8)
    ann_idx = np.array([col[a] for a in gold.annotator[has]], np.int64)
    rows = np.flatnonzero(has)[::-1]  # reversed: the first row of an (item, annotator) wins the assignment
    mat[gold.item[rows], ann_idx[::-1]] = gold.human[rows]
    pairs: dict[str, dict[str, Any]] = {}
    for u, v in combinations(range(len(names)), 2):
        both = (mat[:, u] != _MISSING) & (mat[:, v] != _MISSING)
        if both.sum() == 0:
            continue
        x, y = mat[both, u], mat[both, v]
        pairs[f"{names[u]} ~ {names[v]}"] = {
            "kappa": _num(cohen_kappa(x, y)),
            "agreement": float(np.mean(x == y)),
            "agreement_without_ties": _mean((x == y)[(x != 0) & (y != 0)]),
            "n_items": int(both.sum()),
        }
    if not pairs:
        return None

    def mean_of(key: str) -> float | None:
        vals = [float(p[key]) for p in pairs.values() if p[key] is not None]
        return _num(np.mean(vals)) if vals else None

    return {
        "annotators": len(names),
        "pairs": pairs,
        "mean_kappa": mean_of("kappa"),
        "mean_agreement": mean_of("agreement"),
        "mean_agreement_without_ties": mean_of("agreement_without_ties"),
    }


def report(
    gold: Gold,
    p_chosen: np.ndarray,
    p_ab: np.ndarray | None = None,
    p_ba: np.ndarray | None = None,
    bins: int = ECE_BINS,
) -> dict:
    """Every agreement number of a judge on ``gold`` (see the module docstring); NaN marks a row without a verdict."""
    n = len(gold.item)
    p = np.asarray(p_chosen, dtype=np.float64)
    pab = p if p_ab is None else np.asarray(p_ab, dtype=np.float64)
    pba = p if p_ba is None else np.asarray(p_ba, dtype=np.float64)
    if not (len(p) == len(pab) == len(pba) == n):
        raise CurationError(f"{n} gold rows but {len(p)}/{len(pab)}/{len(pba)} judge probabilities")
    judged = np.isfinite(p) & np.isfinite(pab) & np.isfinite(pba)
    human, item = gold.human, gold.item
    # The judge in the item's orientation: P(a), its two-class decision and its three-class verdict.
    pa_ = np.where(gold.flipped, 1.0 - p, p)
    dec = np.sign(np.nan_to_num(pa_ - 0.5)).astype(np.int8)
    d_ab = np.sign(np.nan_to_num(pab - 0.5)).astype(np.int8)
    d_ba = np.sign(np.nan_to_num(pba - 0.5)).astype(np.int8)
    v3 = np.where(d_ab == d_ba, d_ab, 0).astype(np.int8)
    v3 = np.where(gold.flipped, -v3, v3).astype(np.int8)

    nontie = human != 0
    jn = judged & nontie
    row_correct = _decided(dec == human, dec == 0)
    out: dict[str, Any] = {
        "n_rows": n,
        "n_items": gold.n_items,
        "n_judged_rows": int(judged.sum()),
        "coverage": float(judged.mean()) if n else 0.0,
        "human_tie_rate": float(np.mean(~nontie)) if n else None,
        "accuracy": _mean(row_correct[jn]),
        "accuracy_with_ties": _mean((v3 == human)[judged].astype(np.float64)),
        "accuracy_unjudged_as_wrong": float(row_correct[jn].sum() / nontie.sum()) if nontie.any() else None,
        "n_accuracy": int(jn.sum()),
        "excluded_rows": dict(gold.excluded),
    }

    # Items: the majority label, and the judge's verdict on it (any judged row: rows of one item are
    # the same pair, judged in both orders each).
    maj, strict = _majority(item, human, gold.n_items)
    first = _first_per_item(item, judged, gold.n_items)
    ij = first >= 0
    fi = first[ij]
    out["n_judged_items"] = int(ij.sum())
    has_maj = ij & strict
    mi = first[has_maj]
    out["kappa_majority"] = _num(cohen_kappa(v3[mi], maj[has_maj]))
    out["n_kappa_majority"] = int(has_maj.sum())
    out["items_without_majority"] = int((~strict).sum())
    bin_maj = has_maj & (maj != 0)
    bi = first[bin_maj]
    out["kappa_majority_without_ties"] = _num(cohen_kappa(dec[bi], maj[bin_maj]))
    out["accuracy_majority"] = _mean(_decided(dec[bi] == maj[bin_maj], dec[bi] == 0))

    per: dict[str, dict] = {}
    names = sorted(set(gold.annotator.tolist()))
    for a in names:
        m = judged & (gold.annotator == a)
        if not m.any():
            continue
        per[a or "(none)"] = {
            "kappa": _num(cohen_kappa(v3[m], human[m])),
            "accuracy": _mean(row_correct[m & nontie]),
            "n": int(m.sum()),
        }
    out["kappa_per_annotator"] = per
    ks = [v["kappa"] for v in per.values() if v["kappa"] is not None]
    out["kappa_per_annotator_mean"] = _num(np.mean(ks)) if ks else None
    out["human_human"] = human_ceiling(gold)

    # Judge-only behaviour, per item.
    swap_ok = (d_ab == d_ba) & (d_ab != 0)
    out["swap_consistency"] = _mean(swap_ok[fi].astype(np.float64))
    out["position_flip_rate"] = None if out["swap_consistency"] is None else 1.0 - out["swap_consistency"]
    p_first = (pab + 1.0 - pba) / 2.0  # first shown: chosen in the AB order, rejected in the BA order
    out["position_bias_p_first"] = _mean(p_first[fi])
    firsts = np.concatenate([d_ab[fi] == 1, d_ba[fi] == -1])
    decisive = np.concatenate([d_ab[fi] != 0, d_ba[fi] != 0])
    out["position_first_picked_rate"] = _mean(firsts[decisive].astype(np.float64))

    len_a = np.where(gold.flipped, gold.len_rejected, gold.len_chosen)
    len_b = np.where(gold.flipped, gold.len_chosen, gold.len_rejected)
    longer = np.sign(len_a - len_b).astype(np.int8)  # +1: a is longer
    li = fi[longer[fi] != 0]
    p_longer = np.where(longer[li] == 1, pa_[li], 1.0 - pa_[li])
    judge_dec = dec[li] != 0
    hl = nontie & (longer != 0)
    human_rate = _mean((human[hl] == longer[hl]).astype(np.float64))
    judge_rate = _mean((dec[li] == longer[li])[judge_dec].astype(np.float64))
    out["length_bias"] = {
        "judge_p_longer": _mean(p_longer),
        "judge_longer_rate": judge_rate,
        "human_longer_rate": human_rate,  # also the accuracy of "always pick the longer" on these rows
        "gap": None if judge_rate is None or human_rate is None else judge_rate - human_rate,
        "n_items": int(len(li)),
        "n_human_rows": int(hl.sum()),
    }

    s = gold.self_side != 0
    sj = s & judged
    p_self = np.where(gold.self_side == 1, p, 1.0 - p)
    hs = s & nontie  # the human picked chosen: the self side when self_side is +1
    out["self_preference"] = {
        "n_rows": int(s.sum()),
        "n_judged": int(sj.sum()),
        "judge_p_self": _mean(p_self[sj]),
        "judge_self_rate": _mean(_decided(p_self[sj] > 0.5, p_self[sj] == 0.5)),
        "human_self_rate": _mean((gold.self_side[hs] == 1).astype(np.float64)),
    }
    out["calibration"] = calibration(p[jn], bins)  # P(chosen) = P(the human's pick) on non-tie rows
    return out


def passes(metrics: dict, min_kappa: float, min_swap_consistency: float) -> tuple[bool, list[str]]:
    """Whether an audit's metrics meet the thresholds, and what falls short (one phrase each)."""
    short = []
    k, s = metrics.get("kappa_majority"), metrics.get("swap_consistency")
    if k is None:
        short.append("κ vs majority undefined (no judged item with a majority label)")
    elif k < min_kappa:
        short.append(f"κ vs majority {k:.3f} < {min_kappa:g}")
    if s is None:
        short.append("swap consistency undefined (no judged item)")
    elif s < min_swap_consistency:
        short.append(f"swap consistency {s:.3f} < {min_swap_consistency:g}")
    return not short, short
