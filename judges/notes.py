"""Notes a step leaves for the driver: engine-stat deltas per batch, and the error that stopped it.

Beam pickles steps, even on the in-process runner, so a worker's engine stats never reach the
driver's objects; each batch writes a small JSON file instead, named by a key that is stable across
retries (a retried bundle overwrites its note instead of counting twice). An expected failure that no
row can survive (the server is gone, the budget is spent, a generator cannot start) is noted rather
than raised through Beam: the step stops working, the driver re-raises the same error after the
pipeline, with its own message and type, on any runner.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
from pathlib import Path
from typing import Any

from schemas.errors import PrefmillError

FATAL = "_fatal"


class StepFailed(PrefmillError):
    """A step's expected failure whose exception could not travel back as itself."""


class Notes:
    """A folder of JSON notes (shared with the workers: the executor's work directory)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = str(root)

    def write(self, key: str, data: dict[str, Any]) -> None:
        path = Path(self.root) / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data, default=str))
        os.replace(tmp, path)

    def fail(self, error: BaseException) -> None:
        """Note the error that stops this step (the first one wins)."""
        if (Path(self.root) / f"{FATAL}.json").exists():
            return
        try:
            blob = base64.b64encode(pickle.dumps(error)).decode()
            pickle.loads(base64.b64decode(blob))
        except Exception:
            blob = ""
        self.write(FATAL, {"type": type(error).__name__, "message": str(error), "pickle": blob})

    def read(self) -> dict[str, dict[str, Any]]:
        """Every note but the fatal one, by key in key order."""
        root = Path(self.root)
        if not root.exists():
            return {}
        return {p.stem: json.loads(p.read_text()) for p in sorted(root.glob("*.json")) if p.stem != FATAL}

    def fatal(self) -> BaseException | None:
        """The noted error, as the exception it was (or a StepFailed with its text)."""
        path = Path(self.root) / f"{FATAL}.json"
        if not path.exists():
            return None
        d = json.loads(path.read_text())
        if d.get("pickle"):
            err = pickle.loads(base64.b64decode(d["pickle"]))
            if isinstance(err, BaseException):
                return err
        return StepFailed(f"{d['type']}: {d['message']}")
