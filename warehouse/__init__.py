"""The warehouse: the only code that touches Parquet files and the DuckDB catalog."""

from warehouse.core import Warehouse
from warehouse.counts import CommitResult, RunCounts, StepCount
from warehouse.errors import WarehouseError
from warehouse.layout import default_root

__all__ = ["Warehouse", "RunCounts", "StepCount", "CommitResult", "WarehouseError", "default_root"]
