"""Running the installed `prefmill` as a user would, shared by the CLI tests (not a test module)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples" / "data"
EXE = str(Path(sys.executable).parent / "prefmill")


def run(*args, wh: Path, check=False):
    env = {**os.environ, "PREFMILL_WAREHOUSE": str(wh)}
    p = subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(p.stdout + p.stderr)
    return p


def one_line_error(p):
    assert p.returncode != 0
    assert "Traceback" not in p.stderr + p.stdout
    lines = [line for line in p.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    return lines[0]
