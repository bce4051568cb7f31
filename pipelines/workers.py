"""Beam SDK workers forked from a warm zygote process, for every pipeline the executor runs.

Beam's own ``--direct_running_mode=multi_processing`` starts every worker as a fresh interpreter
that imports Beam (~0.8 s CPU) and Great Expectations (~2.4 s) before its first unit, which made
it slower than the in-process runner at 200k rows on 2 cores. Large runs therefore use FnApiRunner
workers forked from a *zygote* process that has those modules imported already; each forked worker
runs Beam's SdkHarness against the FnApiRunner over gRPC like any other SDK worker
(``ForkedWorkerEnvironment`` and its worker handler plug the zygote into the runner).
"""

from __future__ import annotations

import atexit
import gc
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO

from apache_beam.portability.api import beam_fn_api_pb2
from apache_beam.runners.portability.fn_api_runner.worker_handlers import GrpcWorkerHandler, WorkerHandler
from apache_beam.transforms.environments import Environment

from pipelines.beam_options import DEFAULT_RUNNER, beam_options, option

# The zygote is forked from the driver once the driver has imported the worker modules (it needs
# Great Expectations for the batch checks anyway) when that is safe: on the main thread, with no
# other thread and before gRPC has started in the process (gRPC does not survive a fork; the first
# parallel run in a CLI process qualifies). It keeps no inherited file descriptor but its pipes.
# Otherwise (e.g. under Prefect's threads, or after an earlier parallel run stopped its zygote) it
# is a fresh interpreter that imports the modules itself (~3.4 s, while the driver plans). Either
# way it reads requests on a pipe, reports forks and exits on a status pipe, exits when the driver
# closes its request pipe (at the latest when the driver exits), and is reused by later runs in the
# same process. A worker that dies without answering (killed, crashed) fails the run instead of
# leaving the runner waiting forever.

# Below this (~90k hh-rlhf pairs) the zygote's boot costs more than the second core saves.
PARALLEL_MIN_BYTES = 128 * 1024 * 1024
MAX_WORKERS = 8
FORKED_WORKER_URN = "prefmill:env:forked_worker:v1"
# What every worker needs before its first unit: Beam's harness, the executor and the steps it runs.
_WORKER_PRELOAD = (
    "apache_beam.runners.worker.sdk_worker",
    "pipelines.executor",
    "schemas.ingest",
    "schemas.validation",
    "great_expectations",
)
_RUNNER_WARNING = "If direct_num_workers is not equal to 1"
# argv: the driver's sys.path (JSON), the status pipe's fd.
_ZYGOTE_CODE = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
    "from pipelines.workers import _zygote_main; _zygote_main(int(sys.argv[2]))"
)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def parallel_workers(input_bytes: int, beam_args: list[str] | None) -> int:
    """How many forked workers run an input of ``input_bytes``; 0 means Beam's own setup (in-process
    unless ``beam_args`` say otherwise).

    ``--direct_num_workers=N`` alone asks for N forked workers (1: in-process); any other runner,
    running mode or environment option is passed to Beam as given. Without options: every usable
    CPU (at most ``MAX_WORKERS``) once the input reaches ``PARALLEL_MIN_BYTES``.
    """
    args = list(beam_args or [])
    if not sys.platform.startswith("linux"):  # fork without exec: Linux only
        return 0
    if option(args, "runner") not in (None, DEFAULT_RUNNER) or any(
        option(args, o) is not None
        for o in ("direct_running_mode", "environment_type", "environment_config", "default_environment")
    ):
        return 0
    asked = option(args, "direct_num_workers")
    if asked is not None:
        n = int(asked or 1)
        return 0 if n == 1 else (n if n > 0 else _cpus())
    if _cpus() < 2 or input_bytes < PARALLEL_MIN_BYTES:
        return 0
    return min(_cpus(), MAX_WORKERS)


class _Zygote:
    """The driver's side of the zygote: one request line per worker goes down a pipe (the spawned
    zygote's stdin), status lines come back on another."""

    def __init__(self, fork: bool = False) -> None:
        status_r, status_w = os.pipe()
        self.proc: _ForkedProcess | subprocess.Popen[bytes]
        try:
            if fork:
                self.proc = _fork_zygote(status_r, status_w)
            else:
                self.proc = subprocess.Popen(
                    [sys.executable, "-c", _ZYGOTE_CODE, json.dumps(sys.path), str(status_w)],
                    stdin=subprocess.PIPE,
                    pass_fds=(status_w,),
                )
        finally:
            os.close(status_w)
        assert self.proc.stdin is not None
        self._requests: IO[bytes] = self.proc.stdin  # one request line per worker to fork
        self.forked = fork
        self._lock = threading.Lock()
        self._handlers: dict[str, _ForkedWorkerHandler] = {}  # worker_id → handler, while it runs
        self._pids: dict[int, str] = {}  # worker pid → worker_id
        self._gone: str | None = None  # why the zygote stopped answering, once it has
        self._reader = threading.Thread(
            target=self._read_status, args=(status_r,), daemon=True, name="prefmill-zygote-status"
        )
        self._reader.start()

    def alive(self) -> bool:
        return self._gone is None and self.proc.poll() is None

    def fork_worker(self, handler: _ForkedWorkerHandler) -> None:
        with self._lock:
            if self._gone is not None:
                raise RuntimeError(f"cannot start ingest worker {handler.worker_id}: {self._gone}")
            try:
                self._requests.write(json.dumps([handler.control_address, handler.worker_id]).encode() + b"\n")
                self._requests.flush()
            except OSError as e:  # the zygote died before reading its pipe
                raise RuntimeError(
                    f"cannot start ingest worker {handler.worker_id}: the ingest worker zygote is gone ({e})"
                ) from None
            self._handlers[handler.worker_id] = handler

    def release(self, handler: _ForkedWorkerHandler) -> None:
        with self._lock:
            self._handlers.pop(handler.worker_id, None)

    def _read_status(self, fd: int) -> None:
        """Status lines: {"worker", "pid"} after a fork, {"worker", "error"} when it failed, {"pid", "status"}
        when a worker exited. A worker that could not start or exited fails its handler's pending work."""
        with os.fdopen(fd, "rb") as f:
            for line in f:
                msg = json.loads(line)
                with self._lock:
                    if "error" in msg:
                        handler, reason = self._handlers.get(msg["worker"]), f"could not fork: {msg['error']}"
                    elif "worker" in msg:
                        self._pids[msg["pid"]] = msg["worker"]
                        continue
                    else:
                        # After a finished pipeline nothing waits on the worker any more, so failing its
                        # handler is a no-op; before, it stops the runner waiting for an answer.
                        worker = self._pids.pop(msg["pid"], None)
                        handler = self._handlers.get(worker) if worker is not None else None
                        reason = f"exited ({_exit_text(msg['status'])})"
                if handler is not None:
                    handler.fail(reason)
        # EOF: the zygote is gone, so nothing it was asked for will connect any more.
        self.proc.wait()
        with self._lock:
            self._gone = f"the ingest worker zygote exited ({_exit_text(self.proc.returncode, wait_status=False)})"
            handlers = list(self._handlers.values())
        for h in handlers:
            h.fail(self._gone)

    def stop(self, timeout: float = 10.0) -> None:
        try:
            self._requests.close()  # EOF on the request pipe: the zygote exits once its workers are done
            self.proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def _exit_text(status: int | None, wait_status: bool = True) -> str:
    if status is None:
        return "exit status unknown"
    code = os.waitstatus_to_exitcode(status) if wait_status else status
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


_ZYGOTE: _Zygote | None = None
_ZYGOTE_LOCK = threading.Lock()


def _zygote() -> _Zygote:
    """The process's zygote, started on first use and restarted if it died: forked from this process
    when that is safe (``_driver_can_fork``), else a fresh interpreter that boots in the background."""
    global _ZYGOTE
    with _ZYGOTE_LOCK:
        if _ZYGOTE is None or not _ZYGOTE.alive():
            _ZYGOTE = _Zygote(fork=_driver_can_fork())
        return _ZYGOTE


# Names (as /proc shows them, 15 characters at most) of the threads gRPC core runs while it is in use.
_GRPC_THREADS = ("event_engine", "grpc", "lifeguard", "default-executo", "resolver-execut", "global-executo")


def _driver_can_fork() -> bool:
    """Whether the zygote may be forked from this process rather than started fresh (which costs the
    zygote its own ~3.4 s of imports): called on the main thread, no other Python thread (whose locks
    could be held at the fork; an earlier in-process run leaves GX's tqdm monitor, for one) and no
    gRPC thread (gRPC does not survive a fork; a parallel run starts it and leaves it running)."""
    if threading.current_thread() is not threading.main_thread() or threading.active_count() != 1:
        return False
    try:
        names = [Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in os.listdir("/proc/self/task")]
    except OSError:
        return False
    return not any(name.startswith(_GRPC_THREADS) for name in names)


class _ForkedProcess:
    """Popen-like handle (stdin, poll, wait, kill, returncode) on a zygote forked from this process."""

    def __init__(self, pid: int, stdin: BinaryIO):
        self.pid, self.stdin = pid, stdin
        self.returncode: int | None = None
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        with self._lock:
            if self.returncode is None:
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:  # reaped elsewhere
                    pid, status = self.pid, 255 << 8
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if timeout is not None and deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("ingest worker zygote", timeout)
            time.sleep(0.01)
        return code

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)


def _fork_zygote(status_r: int, status_w: int) -> _ForkedProcess:
    """Fork the zygote from this process once it has imported the worker modules (the driver needs
    Great Expectations next anyway, for the batch checks). The child keeps only stdin/stdout/stderr
    and its two pipes: an inherited socket, pipe or lock file must not outlive the driver's use of it."""
    for name in _WORKER_PRELOAD:
        importlib.import_module(name)
    request_r, request_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the zygote
        status = 1
        try:
            os.close(status_r)
            os.close(request_w)  # else the zygote would never see EOF on its own request pipe
            keep = sorted({0, 1, 2, status_w, request_r})
            for lo, hi in zip(keep, keep[1:] + [os.sysconf("SC_OPEN_MAX")]):
                os.closerange(lo + 1, hi)
            for logger in [logging.getLogger()] + list(logging.Logger.manager.loggerDict.values()):
                if isinstance(logger, logging.Logger):
                    logger.handlers = []  # the driver's handlers (files, services) are not the zygote's
            _zygote_main(status_w, request_r)
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    os.close(request_r)
    return _ForkedProcess(pid, os.fdopen(request_w, "wb"))


def stop_workers() -> None:
    """Stop the zygote (tests, or a long-lived process that wants the memory back); also runs at exit."""
    global _ZYGOTE
    with _ZYGOTE_LOCK:
        if _ZYGOTE is not None:
            _ZYGOTE.stop()
            _ZYGOTE = None


atexit.register(stop_workers)


def _zygote_main(status_fd: int, request_fd: int = 0) -> None:
    """Zygote body: import the worker modules once (a no-op when forked from a driver that has them),
    then fork one SDK worker per request line read from ``request_fd``."""
    for name in _WORKER_PRELOAD:
        importlib.import_module(name)
    gc.freeze()  # the imported heap is never collected in the workers, so its pages stay shared

    def report(msg: dict) -> None:
        os.write(status_fd, json.dumps(msg).encode() + b"\n")

    def reap(signum, frame) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            report({"pid": pid, "status": status})

    signal.signal(signal.SIGCHLD, reap)
    requests = open(request_fd, "rb", closefd=False)
    while True:
        line = requests.readline()
        if not line:
            break
        control_url, worker_id = json.loads(line)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # report the fork before its exit
        try:
            pid = os.fork()
        except OSError as e:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            report({"worker": worker_id, "error": str(e)})
            continue
        if pid == 0:
            _worker_after_fork(status_fd, request_fd, control_url, worker_id)  # never returns
        report({"worker": worker_id, "pid": pid})
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    while True:  # request pipe closed: wait for the workers still running, then exit
        try:
            os.wait()
        except ChildProcessError:
            break


def _worker_after_fork(status_fd: int, request_fd: int, control_url: str, worker_id: str) -> None:
    status = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        os.close(status_fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, request_fd)  # the zygote's request pipe is not the worker's business
        if request_fd != 0:
            os.dup2(devnull, 0)
        os.close(devnull)
        from apache_beam.runners.worker import sdk_worker

        sdk_worker.SdkHarness(control_url, worker_id=worker_id).run()
        status = 0
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


@Environment.register_urn(FORKED_WORKER_URN, bytes)
class ForkedWorkerEnvironment(Environment):
    """Beam environment whose workers are forked from the ingest zygote (this process's machine only)."""

    def to_runner_api_parameter(self, context):
        return FORKED_WORKER_URN, b""

    @staticmethod
    def from_runner_api_parameter(payload, capabilities, artifacts, resource_hints, context):
        return ForkedWorkerEnvironment(capabilities, artifacts, resource_hints)


class _FailableControl:
    """The runner's control connection to one worker, which can answer for a worker that is gone.

    ``fail`` answers every pending and later instruction with an error response, which is how a
    worker reports a failed bundle: the runner stops waiting for the bundle's data and raises.
    """

    def __init__(self, conn):
        self._conn = conn
        self._lock = threading.Lock()
        self._pending: list = []
        self._error: str | None = None

    def push(self, req):
        future = self._conn.push(req)
        if future is not None:
            with self._lock:
                if self._error is None:
                    self._pending = [f for f in self._pending if not f.is_done()] + [future]
                    return future
            _answer(future, self._error)
        return future

    def fail(self, error: str) -> None:
        with self._lock:
            self._error = error
            pending, self._pending = self._pending, []
        for future in pending:
            _answer(future, error)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def _answer(future, error: str) -> None:
    if not future.is_done():
        future.set(beam_fn_api_pb2.InstructionResponse(instruction_id=future.instruction_id, error=error))


@WorkerHandler.register_environment(FORKED_WORKER_URN, bytes)
class _ForkedWorkerHandler(GrpcWorkerHandler):
    def __init__(self, payload, state, provision_info, grpc_server):
        super().__init__(state, provision_info, grpc_server)
        self.control_conn = self._control = _FailableControl(self.control_conn)  # type: ignore[assignment]
        self._zygote: _Zygote | None = None

    def start_worker(self) -> None:
        self._zygote = _zygote()
        self._zygote.fork_worker(self)

    def stop_worker(self) -> None:
        if self._zygote is not None:
            self._zygote.release(self)

    def fail(self, reason: str) -> None:
        self._control.fail(f"ingest worker {self.worker_id}: {reason}")


class _DropRunnerWarning(logging.Filter):
    """FnApiRunner warns that N workers want a multi_* running mode; ours come from ForkedWorkerEnvironment."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_RUNNER_WARNING)


@contextmanager
def forked_runner(workers: int, beam_args: list[str] | None):
    """(runner, options) for a pipeline on ``workers`` workers forked from the zygote."""
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.transforms.environments import python_sdk_capabilities

    log = logging.getLogger("apache_beam.runners.portability.fn_api_runner.fn_runner")
    quiet = _DropRunnerWarning()
    log.addFilter(quiet)
    args = [a for a in (beam_args or []) if option([a], "direct_num_workers") is None]
    try:
        yield (
            FnApiRunner(default_environment=ForkedWorkerEnvironment(capabilities=python_sdk_capabilities())),
            beam_options(args + [f"--direct_num_workers={workers}"]),
        )
    finally:
        log.removeFilter(quiet)


def start_zygote() -> None:
    """Boot the zygote now (it is reused by later runs): a caller that knows it will fork workers
    calls this before planning, so a spawned zygote's imports overlap the driver's planning."""
    _zygote()


def warm_validation() -> threading.Thread:
    """Import Great Expectations in the driver while forked workers run: an ingest's batch checks
    validate the staged rows in the driver next (in-process runs import it during their first unit).
    Start it after ``start_zygote``: a running thread stops the driver from forking the zygote."""
    t = threading.Thread(
        target=importlib.import_module, args=("great_expectations",), daemon=True, name="prefmill-warm-gx"
    )
    t.start()
    return t
