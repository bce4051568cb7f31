"""The engine lifecycle shared by steps that call one role's LLM endpoint (judge, difficulty).

The engine is built from its spec in ``setup()`` — one HTTP pool, event loop and cache connection per
worker, never per batch — and closed in ``teardown()``; a step handed a ready engine (tests, in-process
engines) uses it and leaves closing it to its owner.
"""

from __future__ import annotations

from typing import Any

from judges import engines as eng
from judges.engines import EngineSpec
from schemas.step import Resources, Step, StepError


class EngineStep(Step):
    """A Step with one engine for ``role``: give it a spec (built per worker) or an engine (exactly one)."""

    role: str = ""

    def __init__(self, spec: EngineSpec | None = None, engine: Any = None):
        super().__init__()
        if (spec is None) == (engine is None):
            raise StepError(f"the {self.step_name} step needs a {self.role} engine spec or an engine (one of them)")
        self.spec, self.engine, self._own = spec, engine, engine is None
        ep = spec.endpoints[self.role] if spec is not None else None
        self.resources = Resources(endpoint=f"{ep.url} {ep.model}" if ep else None)

    def setup(self) -> None:
        if self.engine is None and self.spec is not None:
            self.engine = self.spec.build()[self.role]

    def teardown(self) -> None:
        if self._own and self.engine is not None:
            eng.close_engines({self.role: self.engine})
            self.engine = None

    def ready_engine(self) -> Any:
        if self.engine is None:
            raise StepError(f"the {self.step_name} step was not set up (call setup() first)")
        return self.engine
