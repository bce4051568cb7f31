"""Label-noise steps: ``NoiseStep`` adds ``noise_votes`` / ``noise_voters`` / ``noise_flag`` from voter
columns, ``DropNoisyStep`` removes the flagged pairs (reason ``label_noise``).

Each voter column holds one voter's P(chosen ≻ rejected) per pair (null or NaN: abstained); the voting
rule is ``curation.noise``. ``flows.noise`` fills the voter columns (judges through the judge pipeline,
reward models through the embedding store) as working columns, so only the three noise columns reach
the published version; ``prefmill curate --drop-noisy`` runs ``DropNoisyStep`` on a version that has them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.noise import (
    COLUMNS,
    DEFAULT_CONFIDENCE,
    REASON,
    NoiseError,
    check_params,
    count_votes,
    is_tie,
    vote_columns,
)
from curation.steps.base import set_column
from schemas.registry import STEPS
from schemas.step import Step, StepError, StepResult, reject_rows

STEP = "noise_flags"
DROP_STEP = "drop_noisy"


@dataclass(frozen=True)
class NoiseConfig:
    voters: tuple[str, ...] = ()  # columns with each voter's P(chosen ≻ rejected); null / NaN = abstained
    m: int | None = None  # votes against the label that flag a pair (default: 2 of k, 1 of 1)
    confidence: float = DEFAULT_CONFIDENCE  # a voter is against when P(chosen ≻ rejected) ≤ 1 − confidence

    def check(self) -> NoiseConfig:
        """The config with ``m`` resolved; one clear error for bad bounds or voter columns."""
        if isinstance(self.voters, str) or not all(isinstance(v, str) and v for v in self.voters):
            raise NoiseError(f"voters must be a list of column names, got {self.voters!r}")
        if len(set(self.voters)) != len(self.voters):
            raise NoiseError(f"a voter column is named twice in {list(self.voters)}: votes must be independent")
        return replace(self, voters=tuple(self.voters), m=check_params(len(self.voters), self.m, self.confidence))


def _probs(batch: pa.Table, column: str) -> np.ndarray:
    col = pc.fill_null(batch.column(column).cast(pa.float64()), float("nan"))
    return col.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


@STEPS.register(STEP, config=NoiseConfig, shapes=("pairwise",), tags=("noise-flagged",), extra={"stage": "curate"})
class NoiseStep(Step):
    """Count voters against each pair's label: noise_votes, noise_voters, noise_flag (votes ≥ m; ties never)."""

    name = STEP
    needs: ClassVar[tuple[str, ...]] = ("label",)  # and the config's voter columns
    adds: ClassVar[tuple[str, ...]] = COLUMNS
    shapes: ClassVar[tuple[str, ...] | None] = ("pairwise",)

    def __init__(self, config: NoiseConfig):
        super().__init__()
        self.config = config.check()

    def process(self, batch: pa.Table) -> StepResult:
        missing = [c for c in self.config.voters if c not in batch.column_names]
        if missing:
            raise StepError(f"step {self.step_name!r} needs voter column(s) {', '.join(missing)}")
        n, k = batch.num_rows, len(self.config.voters)
        probs = np.column_stack([_probs(batch, c) for c in self.config.voters]) if n else np.empty((0, k))
        assert self.config.m is not None  # resolved by check()
        votes = count_votes(probs, is_tie(batch.column("label")), self.config.m, self.config.confidence)
        for name, values in vote_columns(votes).items():
            batch = set_column(batch, name, values)
        return StepResult(batch)


@STEPS.register(DROP_STEP, shapes=("pairwise",), tags=("noise-filtered",), extra={"stage": "curate"})
class DropNoisyStep(Step):
    """Remove the pairs flagged as label noise (noise_flag), reason label_noise with the votes in detail."""

    name = DROP_STEP
    needs: ClassVar[tuple[str, ...]] = COLUMNS
    shapes: ClassVar[tuple[str, ...] | None] = ("pairwise",)

    def _check_needs(self, table: pa.Table) -> None:
        missing = [c for c in self.needs if c not in table.column_names]
        if missing:
            raise StepError(
                f"step {self.step_name!r} needs the noise columns ({', '.join(missing)} missing): "
                "run `prefmill noise` on the dataset first"
            )

    def process(self, batch: pa.Table) -> StepResult:
        flag = pc.fill_null(batch.column("noise_flag"), False)
        noisy = batch.filter(flag)
        detail = pc.binary_join_element_wise(
            '{"noise_votes": ',
            pc.fill_null(noisy.column("noise_votes").cast(pa.string()), "null"),
            ', "noise_voters": ',
            pc.fill_null(noisy.column("noise_voters").cast(pa.string()), "null"),
            "}",
            "",
        )
        rejected = reject_rows(noisy, self.step_name, REASON, detail=cast(Any, detail), shape=self.shape)
        return StepResult(batch.filter(pc.invert(flag)), rejected)
