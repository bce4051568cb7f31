"""Failures of the judges layer. One bad row never raises (it becomes a failed Response, then a
rejected row); these stop a run, each with a one-line message."""

from schemas.errors import PrefmillError


class EngineError(PrefmillError, RuntimeError):
    """Base class: the engine cannot serve any request."""


class EngineUnreachable(EngineError):
    """No LLM server answers at the configured URL, so no row can succeed."""

    transient = True  # a server that is restarting may answer a later attempt


class EngineUnavailable(EngineError):
    """The engine's backend cannot be used in this environment (e.g. vllm not importable)."""


class JudgeError(PrefmillError, ValueError):
    """Bad judge arguments or a dataset that cannot be judged: a one-line message, nothing started."""


class BudgetExhausted(PrefmillError, RuntimeError):
    """The spending cap was reached mid-run: nothing was published; a rerun resumes from the cache."""
