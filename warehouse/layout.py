"""Where everything lives under a warehouse root. Paths stored in the catalog are relative to it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from warehouse.errors import WarehouseError

ENV_VAR = "PREFMILL_WAREHOUSE"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def default_root() -> Path:
    """$PREFMILL_WAREHOUSE, else ./.prefmill/warehouse."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else Path(".prefmill") / "warehouse"


def check_name(kind: str, value: str) -> str:
    # Names become directory names and SQL literals in view definitions: keep them boring.
    if not isinstance(value, str) or not _NAME.match(value):
        raise WarehouseError(f"invalid {kind} {value!r}: use letters, digits, '.', '_' or '-' (max 128)")
    return value


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike) -> Layout:
        return cls(Path(root).expanduser().resolve())

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def lock_file(self) -> Path:
        return self.root / ".writer.lock"

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def objects_dir(self, shape: str) -> Path:
        return self.lake / "objects" / shape

    def empty_file(self, shape: str) -> Path:
        return self.lake / "empty" / f"{shape}.parquet"

    def quarantine_dir(self, run_id: str) -> Path:
        return self.lake / "quarantine" / check_name("run id", run_id)

    def staging(self, run_id: str) -> Path:
        return self.root / "staging" / check_name("run id", run_id)

    def rel(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()

    def abs(self, rel: str) -> Path:
        return self.root / rel

    def exists(self) -> bool:
        return self.catalog.exists()
