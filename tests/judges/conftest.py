"""Fixtures for engine tests: a fake OpenAI-compatible server on 127.0.0.1 (random port, background thread)."""

from __future__ import annotations

import pytest

from tests.judges.fake_openai_server import FakeConfig, FakeOpenAIServer


@pytest.fixture
def make_fake_server():
    """Factory: ``make_fake_server(latency_s=0.005, fault_rate=0.2, ...)`` → a started FakeOpenAIServer."""
    servers: list[FakeOpenAIServer] = []

    def make(**config) -> FakeOpenAIServer:
        srv = FakeOpenAIServer(FakeConfig(**config)).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def fake_server(make_fake_server) -> FakeOpenAIServer:
    return make_fake_server()
