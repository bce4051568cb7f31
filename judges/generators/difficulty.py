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

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from judges.engine_step import EngineStep
from judges.engines import EngineSpec
from judges.generators import calls
from judges.generators.common import model_name
from schemas.registry import STEPS
from schemas.step import StepResult, reject_rows

STEP = "difficulty"
ROLE = "reference"
FIELDS = [
    pa.field("ref_logratio", pa.float64()),
    pa.field("ref_logratio_norm", pa.float64()),
    pa.field("ref_correct", pa.bool_()),
    pa.field("ref_correct_norm", pa.bool_()),
    pa.field("flip_loss_threshold", pa.float64()),
    pa.field("ref_model", pa.string()),
    pa.field("difficulty_beta", pa.float64()),
]
COLUMNS = [f.name for f in FIELDS]


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


@dataclass(frozen=True)
class DifficultyConfig:
    beta: float = 0.1  # DEFAULT
    chat_template: str | None = None


@STEPS.register(
    STEP,
    config=DifficultyConfig,
    shapes=("pairwise",),
    roles=(ROLE,),
    tags=("difficulty-features",),
    extra={"stage": "judge"},
)
class DifficultyStep(EngineStep):
    """Pair difficulty under a reference model (log-ratio, flip-loss threshold) as columns.

    Annotates: a pair that cannot be scored keeps null columns and is a rejected row with its reason
    (``difficulty_unsupported_shape``: the judged turn is not one assistant message on each side;
    ``difficulty_logprob_failed``)."""

    name = STEP
    role = ROLE
    needs = ("prompt", "chosen", "rejected")
    adds = tuple(COLUMNS)
    shapes = ("pairwise",)
    annotates = True

    def __init__(self, config: DifficultyConfig | None = None, *, spec: EngineSpec | None = None, engine: Any = None):
        super().__init__(spec, engine)
        self.config = config or DifficultyConfig()

    def process(self, batch: pa.Table) -> StepResult:
        self.ready_engine()
        cfg, n = self.config, batch.num_rows
        one = pc.and_(
            pc.equal(pc.list_value_length(batch.column("chosen")), 1),
            pc.equal(pc.list_value_length(batch.column("rejected")), 1),
        )
        supported = pc.fill_null(one, False).to_numpy(zero_copy_only=False)
        idx = np.flatnonzero(supported)
        sub = batch.take(pa.array(idx, pa.int64()))
        prompts = sub.column("prompt").to_pylist()
        chosen = [c[0]["content"] for c in sub.column("chosen").to_pylist()]
        rejected = [r[0]["content"] for r in sub.column("rejected").to_pylist()]
        items = [x for p, c, r in zip(prompts, chosen, rejected) for x in ((p, c), (p, r))]
        lps = calls.logprob(self.engine, items, chat_template=cfg.chat_template) if items else []
        scored = np.array([lps[2 * i].ok and lps[2 * i + 1].ok for i in range(len(idx))], bool)
        good = idx[scored]

        def value(k: int, attr: str) -> list:
            return [getattr(lps[2 * i + k].value, attr) for i in np.flatnonzero(scored)]

        cols = difficulty_columns(
            value(0, "sum"), value(1, "sum"), value(0, "n_tokens"), value(1, "n_tokens"), cfg.beta
        )
        no_norm = np.isnan(cols["ref_logratio_norm"])  # no token counts → no per-token verdict either
        out = batch
        for f in FIELDS:
            full = np.full(n, None, dtype=object)
            if f.name == "ref_model":
                full[good] = model_name(self.engine)
            elif f.name == "difficulty_beta":
                full[good] = cfg.beta
            else:
                v = cols[f.name].astype(object)
                if f.type == pa.float64():
                    v[np.isnan(cols[f.name])] = None
                elif f.name == "ref_correct_norm":
                    v[no_norm] = None
                full[good] = v
            out = out.append_column(f, pa.array(full.tolist(), f.type))
        reasons = np.full(n, "", dtype=object)
        reasons[~supported] = "difficulty_unsupported_shape"
        failed = idx[~scored]
        reasons[failed] = "difficulty_logprob_failed"
        bad = np.flatnonzero(reasons != "")
        rej = reject_rows(
            batch.take(pa.array(bad, pa.int64())), STEP, reasons[bad].tolist(), detail="", shape="pairwise"
        )
        return StepResult(out, rej)
