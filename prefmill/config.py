"""The process environment of every prefmill entry point: quiet, offline, and without import-time noise."""

from __future__ import annotations

import logging

from schemas import environment

# Import-time notices from libraries that say nothing about the user's data.
_NOISE = ("apitools not found", "Created temporary directory")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not any(n in msg for n in _NOISE)


def quiet_env() -> None:
    """Apply schemas.environment.QUIET_ENV (a variable already set wins) and filter the import-time noise.

    Call it before importing Prefect, Great Expectations or transformers: they read these at import."""
    environment.apply()
    # GX forces its base logger to INFO on import and announces its ephemeral docs folder there; a filter
    # survives that (a level would not), so Prefect's handlers don't print it.
    for logger in (logging.getLogger(), logging.getLogger("great_expectations.data_context.types.base")):
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())
