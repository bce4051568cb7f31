"""One error base class for every layer: what the CLI prints, its exit code, and whether a retry can help.

Expected failures (bad input, a missing model, an unreachable server, a lock held by another writer)
subclass ``PrefmillError``; the CLI prints their first line and exits with ``exit_code``. ``transient``
says whether the same call may succeed later (a flow retries those, and only those). Anything that is
not a ``PrefmillError`` is a bug and keeps its traceback.
"""

from __future__ import annotations


class PrefmillError(Exception):
    """An expected failure with a one-line message."""

    exit_code: int = 2
    transient: bool = False


class TransientError(PrefmillError):
    """A failure that a retry may fix (a lock held by another writer, a server that is restarting)."""

    transient = True
