"""One real ``vllm serve`` (tiny random GPT-2, built in a temp dir) for the whole test session.

The vLLM env is created by judges.vllm_env.ensure() (cached per machine). Tests are skipped only
when that env cannot be created (e.g. no access to PyPI); with CI or PREFMILL_REQUIRE_VLLM set
that is a failure instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class VllmServer:
    url: str  # http://127.0.0.1:PORT (root: /tokenize lives here)
    base_url: str  # url + /v1
    model: str  # served model name
    model_path: Path  # the tiny model folder (load it with transformers to cross-check)
    log_path: Path


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    from judges import vllm_env
    from judges.tiny_model import build_tiny_model

    try:
        env = vllm_env.ensure()
    except vllm_env.VllmEnvError as exc:
        if os.environ.get("CI") or os.environ.get("PREFMILL_REQUIRE_VLLM"):
            pytest.fail(f"the vLLM env is required here but could not be created: {exc}")
        pytest.skip(f"vLLM env could not be created (no access to PyPI?): {exc}")
    tmp = tmp_path_factory.mktemp("vllm")
    model = build_tiny_model(tmp / "tiny-gpt2", seed=0)
    # --max-logprobs -1 lets a test ask for the full next-token distribution (cross-check vs transformers).
    handle = vllm_env.serve(
        model, env=env, extra_args=["--max-logprobs", "-1"], log_path=tmp / "vllm.log", timeout_s=900
    )
    try:
        yield VllmServer(handle.url, handle.base_url, handle.model, model, handle.log_path)
    finally:
        handle.stop()
