"""Configuration: environment defaults and the warehouse location (flag > env > default)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

# No telemetry leaves the machine and nothing is fetched from a model hub.
QUIET_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # Prefect's temporary server can take >20 s to start on a busy 2-core machine.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}


# Import-time notices from libraries that say nothing about the user's data.
_NOISE = ("apitools not found", "Created temporary directory")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not any(n in msg for n in _NOISE)


def quiet_env() -> None:
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
    root = logging.getLogger()
    if not any(isinstance(f, _DropNoise) for f in root.filters):
        root.addFilter(_DropNoise())
    # GX forces this logger to INFO on import and announces its ephemeral docs folder there; a filter
    # survives that (a level would not), so Prefect's handlers don't print it.
    gx_base = logging.getLogger("great_expectations.data_context.types.base")
    if not any(isinstance(f, _DropNoise) for f in gx_base.filters):
        gx_base.addFilter(_DropNoise())


def warehouse_root(flag: str | os.PathLike | None = None) -> Path:
    """--warehouse flag, else $PREFMILL_WAREHOUSE, else ./.prefmill/warehouse (warehouse.default_root)."""
    from warehouse import default_root

    return Path(flag) if flag else default_root()
