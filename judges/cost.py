"""What a judge run costs: GPU-seconds per request, prices, and a budget that stops sending.

GPU-seconds proxy: the client cannot see the GPU, so it uses busy wall time — time with at least one
request in flight — and splits each interval evenly among the requests in flight during it. A
request's share is ``∫ dt / in_flight(t)`` over its attempts, so the shares of all requests add up
exactly to the busy time. With one server of `gpus` GPUs serving only this engine this is the wall
time the GPUs were held; with other clients on the same server it is an upper bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


class BusyMeter:
    """Tracks busy wall time and each request's share of it in O(1) per start/stop."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self._clock = clock
        self.in_flight = 0
        self.busy_s = 0.0
        self._share = 0.0  # ∫ dt / in_flight since creation: a request's share is the difference
        self._t = 0.0

    def _advance(self) -> None:
        now = self._clock()
        if self.in_flight:
            dt = now - self._t
            self.busy_s += dt
            self._share += dt / self.in_flight
        self._t = now

    def start(self) -> float:
        """A request goes in flight; returns the token to pass to `stop`."""
        self._advance()
        self.in_flight += 1
        return self._share

    def stop(self, token: float) -> float:
        """The request is done; returns its share of busy time in seconds."""
        self._advance()
        self.in_flight -= 1
        return self._share - token


@dataclass(frozen=True)
class Price:
    """GPU rental price (self-hosted vLLM), optionally plus per-token prices (hosted APIs)."""

    gpu_usd_per_hour: float = 0.0
    gpus: int = 1
    usd_per_m_prompt_tokens: float = 0.0
    usd_per_m_completion_tokens: float = 0.0

    def cost(self, gpu_seconds: float, prompt_tokens: int = 0, completion_tokens: int = 0) -> float:
        return (
            gpu_seconds * self.gpus * self.gpu_usd_per_hour / 3600
            + prompt_tokens * self.usd_per_m_prompt_tokens / 1e6
            + completion_tokens * self.usd_per_m_completion_tokens / 1e6
        )


@dataclass
class Budget:
    """Caps on what one engine may spend. Checked before each request is sent.

    `max_requests` is exact (counts requests admitted, not retries). `max_tokens` and `max_usd` are
    charged when a response arrives, so requests already in flight when the cap is hit still land:
    the overshoot is at most one response per concurrent slot. Cached answers are free and never charged.
    """

    max_usd: float | None = None
    max_tokens: int | None = None
    max_requests: int | None = None
    spent_usd: float = field(default=0.0, init=False)
    spent_tokens: int = field(default=0, init=False)
    spent_requests: int = field(default=0, init=False)

    @property
    def exhausted(self) -> bool:
        return (
            (self.max_requests is not None and self.spent_requests >= self.max_requests)
            or (self.max_tokens is not None and self.spent_tokens >= self.max_tokens)
            or (self.max_usd is not None and self.spent_usd >= self.max_usd)
        )

    def admit(self) -> bool:
        """Reserve one request; False (and nothing reserved) once any cap is reached."""
        if self.exhausted:
            return False
        self.spent_requests += 1
        return True

    def charge(self, tokens: int = 0, usd: float = 0.0) -> None:
        self.spent_tokens += tokens
        self.spent_usd += usd
