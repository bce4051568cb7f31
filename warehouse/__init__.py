"""The warehouse: the only code that touches Parquet files and the DuckDB catalog."""

from warehouse.core import Warehouse
from warehouse.counts import CommitResult, RunCounts, StepCount, run_counts, step_counts
from warehouse.errors import WarehouseBusy, WarehouseError
from warehouse.layout import default_root
from warehouse.run_context import Run

__all__ = [
    "Warehouse",
    "Run",
    "RunCounts",
    "StepCount",
    "CommitResult",
    "WarehouseError",
    "WarehouseBusy",
    "default_root",
    "run_counts",
    "step_counts",
]
