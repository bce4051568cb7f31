"""The environment every prefmill process runs with: no telemetry leaves the machine, nothing is fetched from a hub.

The one list of these variables. Python entry points (the CLI, the demo, the tests, the benches) apply it
with ``apply()`` before importing Prefect, Great Expectations or transformers; ``judges.vllm_env`` forces
``TELEMETRY_OFF`` on the servers it starts. Shell copies (the Makefile) exist only for processes started
before Python runs; tests/prefmill/test_environment.py checks they match. Standard library only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

# Usage reports: set whatever the caller's environment says in the processes prefmill starts itself.
TELEMETRY_OFF: dict[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "VLLM_NO_USAGE_STATS": "1",
}

QUIET_ENV: dict[str, str] = {
    **TELEMETRY_OFF,
    # Models come from local folders or the offline package, never from a hub download.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    # Tokenizer threads fight Beam's workers for the cores and warn after every fork.
    "TOKENIZERS_PARALLELISM": "false",
    # Prefect's temporary server can take >20 s to start on a busy 2-core machine.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}


def with_quiet(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` plus every QUIET_ENV variable it does not set, with TELEMETRY_OFF forced (for child processes)."""
    return {**QUIET_ENV, **environ, **TELEMETRY_OFF}


def apply(environ: MutableMapping[str, str] | None = None) -> None:
    """Set every QUIET_ENV variable the environment does not set already (a caller's own value wins)."""
    env = os.environ if environ is None else environ
    for name, value in QUIET_ENV.items():
        env.setdefault(name, value)
