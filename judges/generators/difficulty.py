"""Pair difficulty under the reference model (Chen et al., arXiv 2405.19534, Thm 4.1), as curation columns.

c = log πRef(y_l|x) − log πRef(y_w|x). A DPO-trained model ranks the pair correctly iff
L_DPO ≤ −log σ(βc) = softplus(−βc): c ≤ 0 is already ranked correctly by the reference, small
c > 0 is easy to flip, large c is hard. Columns (all from the paper's formulas, verified in its PDF):

- ``ref_logratio``       c on summed token logprobs;
- ``ref_logratio_norm``  the same on per-token mean logprobs (the paper's length-normalised R̃);
- ``ref_correct`` / ``ref_correct_norm``   c ≤ 0;
- ``flip_loss_threshold``  softplus(−βc), β DEFAULT 0.1 (the paper reports a β grid; ours is a knob);
- ``ref_model``, ``difficulty_beta``.

Left out: the idealised ranking accuracy needs the rater share α, which synthetic pairs lack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from judges.generators import calls
from judges.generators.common import CostMeter, GeneratorResult, model_name, require_items

METHOD = "difficulty"


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)  # log(1 + e^x) without overflow


def difficulty_columns(logp_w: Any, logp_l: Any, n_w: Any, n_l: Any, beta: float = 0.1) -> dict[str, np.ndarray]:
    """Vectorised features from summed reference logprobs and token counts of chosen (w) / rejected (l)."""
    lw, ll = np.asarray(logp_w, dtype=np.float64), np.asarray(logp_l, dtype=np.float64)
    nw, nl = np.asarray(n_w, dtype=np.float64), np.asarray(n_l, dtype=np.float64)
    c = ll - lw
    with np.errstate(divide="ignore", invalid="ignore"):
        c_norm = np.where((nw > 0) & (nl > 0), ll / nl - lw / nw, np.nan)
    return {
        "ref_logratio": c,
        "ref_logratio_norm": c_norm,
        "ref_correct": c <= 0,
        "ref_correct_norm": c_norm <= 0,
        "flip_loss_threshold": softplus(-beta * c),
    }


@dataclass
class DifficultyConfig:
    beta: float = 0.1  # DEFAULT
    chat_template: str | None = None


def run_difficulty(reference: Any, pairs: Sequence[dict], config: DifficultyConfig | None = None) -> GeneratorResult:
    """Pairwise rows in → the same rows (copies) with the difficulty columns added, in ``pairs``.

    Needs a single assistant message as chosen and as rejected (the judged turn); other rows and
    rows whose logprobs fail are dropped with a reason.
    """
    cfg = config or DifficultyConfig()
    rows = require_items(pairs, "pairs", "run_difficulty")
    res = GeneratorResult()
    meter = CostMeter({"reference": reference})
    ok_rows, items = [], []
    for row in rows:
        ch, rj = row.get("chosen") or [], row.get("rejected") or []
        if not isinstance(row.get("prompt"), list) or len(ch) != 1 or len(rj) != 1:
            res.dropped["difficulty_unsupported_shape"] += 1
            continue
        ok_rows.append(row)
        items += [(row["prompt"], ch[0]["content"]), (row["prompt"], rj[0]["content"])]
    lps = calls.logprob(reference, items, chat_template=cfg.chat_template) if items else []
    good, lw, ll, nw, nl = [], [], [], [], []
    for i, row in enumerate(ok_rows):
        w, l = lps[2 * i], lps[2 * i + 1]
        if not (w.ok and l.ok):
            res.dropped["difficulty_logprob_failed"] += 1
            continue
        good.append(row)
        lw.append(w.value.sum), ll.append(l.value.sum), nw.append(w.value.n_tokens), nl.append(l.value.n_tokens)
    cols = difficulty_columns(lw, ll, nw, nl, cfg.beta) if good else {}
    ref = model_name(reference)
    for i, row in enumerate(good):
        extra = {k: (bool(v[i]) if v.dtype == bool else _num(v[i])) for k, v in cols.items()}
        if extra["ref_logratio_norm"] is None:  # no token counts → no per-token verdict either
            extra["ref_correct_norm"] = None
        res.pairs.append({**row, **extra, "ref_model": ref, "difficulty_beta": cfg.beta})
    n = len(res.pairs)
    res.stats = {
        "method": METHOD,
        "beta": cfg.beta,
        "ref_model": ref,
        "rows": n,
        "ref_correct_share": float(np.mean(cols["ref_correct"])) if n else None,
        "median_ref_logratio": float(np.median(cols["ref_logratio"])) if n else None,
        "cost": meter.finish(n),
    }
    return res


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)
