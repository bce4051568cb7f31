"""One list of quiet/offline variables (schemas.environment); the shell copies must say the same."""

import os
import re
from pathlib import Path

from schemas.environment import QUIET_ENV, TELEMETRY_OFF, apply, with_quiet

ROOT = Path(__file__).resolve().parents[2]
_EXPORT = re.compile(r"^export\s+(.+)$", re.M)


def shell_exports(path: Path) -> dict[str, str]:
    """NAME=value pairs of the ``export`` lines of a Makefile or a shell script."""
    out = {}
    for line in _EXPORT.findall(path.read_text()):
        for word in line.split():
            name, sep, value = word.partition("=")
            if sep:
                out[name] = value
    return out


def test_the_test_session_runs_quiet():
    assert all(k in os.environ for k in QUIET_ENV)  # tests/conftest.py applied the list


def test_makefile_exports_the_same_list():
    assert shell_exports(ROOT / "Makefile") == QUIET_ENV


def test_ci_script_exports_nothing_else():
    exported = shell_exports(ROOT / ".ci" / "run")
    assert exported.items() <= QUIET_ENV.items()


def test_apply_keeps_a_callers_value_and_children_get_telemetry_off():
    env = {"HF_HUB_OFFLINE": "0", "DO_NOT_TRACK": "0"}
    apply(env)
    assert env["HF_HUB_OFFLINE"] == "0" and env["DO_NOT_TRACK"] == "0"
    assert env.keys() == QUIET_ENV.keys()
    child = with_quiet(env)
    assert child["HF_HUB_OFFLINE"] == "0" and all(child[k] == v for k, v in TELEMETRY_OFF.items())
