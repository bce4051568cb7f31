"""Help texts with ``{placeholders}`` filled in only when help is shown.

``{formats}``, ``{exports}``, ``{generators}``, ``{curate_methods}``, ``{file_formats}``, ``{recipes}`` become
the registered names; any other ``{a.b}`` is the effective setting (``{curate.method}``, ``{warehouse}``),
so ``--help`` shows what a command will use here, after the environment and prefmill.toml. Filling them at
import time would import every registry (torch included) on every command.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperCommand

from prefmill import catalog
from schemas.errors import PrefmillError

_PLACEHOLDER = re.compile(r"\{([a-z_]+(?:\.[a-z_]+)*)\}")


def _recipes() -> str:
    from curation.recipes import RECIPES

    return catalog.names(RECIPES)


LISTS: dict[str, Callable[[], str]] = {
    "formats": lambda: catalog.names(catalog.formats()),
    "exports": lambda: catalog.names(catalog.exports()),
    "generators": lambda: catalog.names(catalog.generators()),
    "curate_methods": lambda: catalog.names(catalog.curate_methods()),
    "file_formats": lambda: catalog.names(catalog.file_formats()),
    "recipes": _recipes,
}


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return " ".join(map(str, value)) or "none"
    return str(value)


def fill(text: str) -> str:
    from prefmill.settings import load_settings

    settings: Any = None

    def one(m: re.Match[str]) -> str:
        nonlocal settings
        key = m.group(1)
        if key in LISTS:
            return LISTS[key]()
        try:
            settings = settings or load_settings()
        except PrefmillError as e:
            return f"? ({e})"
        value: Any = settings
        for part in key.split("."):
            value = getattr(value, part)
        return _shown(value)

    return _PLACEHOLDER.sub(one, text)


class Command(TyperCommand):
    def format_help(self, ctx: Any, formatter: Any) -> None:  # typer's vendored click types
        if self.help:
            self.help = fill(self.help)
        for param in self.params:  # typer's arguments carry help too, so not only click.Option
            text = getattr(param, "help", None)
            if isinstance(text, str):
                setattr(param, "help", fill(text))  # noqa: B010
        super().format_help(ctx, formatter)


class App(typer.Typer):
    """A Typer whose commands fill their help placeholders when help is shown."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", Command)
        return super().command(*args, **kwargs)
