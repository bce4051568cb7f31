"""Expected failures become their message in red and a non-zero exit; only bugs show a traceback.

The one rule: a ``schemas.errors.PrefmillError`` prints its text (one line; a multi-line message such as
a server's log tail is printed whole) and exits with its ``exit_code``. Anything else is a bug.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from schemas.errors import PrefmillError

_err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


class UsageError(PrefmillError):
    """A flag combination the command cannot run with (one line, exit 2)."""


def fail(message: str, code: int = 2) -> NoReturn:
    _err.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.BadParameter):
            raise
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except PrefmillError as e:
            fail(str(e), e.exit_code)

    return wrapper  # type: ignore[return-value]
