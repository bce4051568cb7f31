import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).parent / "prefmill")


def _without_prefmill_vars() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PREFMILL_")}


@pytest.fixture
def no_settings(monkeypatch, tmp_path) -> Path:
    """No PREFMILL_* variable from the caller's shell, and a current directory (tmp_path) without prefmill.toml."""
    for name in list(os.environ):
        if name.startswith("PREFMILL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def prefmill_cli(tmp_path) -> Callable[..., subprocess.CompletedProcess]:
    """Run the installed `prefmill` as a user would: ``cli(*args, env={...}, cwd=dir)``; the caller's
    PREFMILL_* variables are dropped (only ``env`` sets them) and the default directory is tmp_path."""

    def run(*args, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [EXE, *map(str, args)],
            capture_output=True,
            text=True,
            env={**_without_prefmill_vars(), **(env or {})},
            cwd=cwd or tmp_path,
            timeout=300,
        )

    return run


def error_line(p: subprocess.CompletedProcess) -> str:
    """The one stderr line of a failed command (no traceback)."""
    assert p.returncode != 0, p.stdout
    assert "Traceback" not in p.stderr + p.stdout
    lines = [line for line in p.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    return lines[0]


@pytest.fixture
def one_line_error() -> Callable[[subprocess.CompletedProcess], str]:
    return error_line
