"""Configuration: environment defaults and the warehouse location (flag > env > default)."""
from __future__ import annotations

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
}

DEFAULT_WAREHOUSE = Path(".prefmill") / "warehouse"


def quiet_env() -> None:
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)


def warehouse_root(flag: str | os.PathLike | None = None) -> Path:
    if flag:
        return Path(flag)
    env = os.environ.get("PREFMILL_WAREHOUSE")
    return Path(env) if env else DEFAULT_WAREHOUSE
