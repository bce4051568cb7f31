"""Engine-level failures that stop a run (one bad row never raises: it becomes a failed Response)."""


class EngineError(RuntimeError):
    """Base class: the engine cannot serve any request."""


class EngineUnreachable(EngineError):
    """No LLM server answers at the configured URL, so no row can succeed."""


class EngineUnavailable(EngineError):
    """The engine's backend cannot be used in this environment (e.g. vllm not importable)."""
