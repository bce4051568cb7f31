from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from curation.steps import ROW
from schemas.step import FitStep, StepResult


@pytest.fixture
def run_step():
    """Run one step over a whole table as one batch (fit first for a FitStep), as the executor would."""

    def run(step, table: pa.Table, shape: str = "pairwise") -> StepResult:
        t = table.append_column(ROW, pa.array(np.arange(table.num_rows, dtype=np.int64)))
        if isinstance(step, FitStep):
            return step(t, step.fit_checked(t, shape), shape)
        return step(t, shape)

    return run
