"""Expected failures become one red line and a non-zero exit; only bugs show a traceback."""

from __future__ import annotations

import functools
import sys

import typer
from rich.console import Console

_err = Console(stderr=True)


def _expected() -> tuple[type[BaseException], ...]:
    # Imported lazily: each layer defines its own error types.
    from flows.jobs import ValidationFailed
    from schemas.adapters import UnknownFormat
    from schemas.adapters.mapping import MappingError
    from schemas.readers import SourceError
    from warehouse import WarehouseError

    kinds: list[type[BaseException]] = [UnknownFormat, MappingError, SourceError, WarehouseError, ValidationFailed]
    from curation.embed import ModelNotFound
    from curation.errors import CurationError
    from flows.judge import JudgeError
    from flows.synthesize import BudgetExhausted
    from judges.errors import EngineUnavailable, EngineUnreachable
    from judges.generators.common import GeneratorError
    from judges.vllm_env import VllmEnvError, VllmServeError

    kinds += [
        EngineUnreachable,
        EngineUnavailable,
        CurationError,
        ModelNotFound,
        JudgeError,
        BudgetExhausted,
        GeneratorError,
        VllmEnvError,
        VllmServeError,
    ]
    return tuple(kinds)


def fail(message: str, code: int = 2) -> None:
    _err.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except typer.BadParameter:
            raise
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except Exception as e:
            if isinstance(e, _expected()):
                text = str(e)
                first, _, rest = text.partition("\n")
                fail(first if not rest else text, 1 if e.__class__.__name__ == "ValidationFailed" else 2)
            raise

    return wrapper


def is_tty() -> bool:
    return sys.stderr.isatty()
