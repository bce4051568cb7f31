"""The one engine factory: endpoints by role → HTTP engines sharing one request cache, budget and price.

An ``EngineSpec`` is what a worker needs to build its engines: it is a plain (picklable) value, so it
travels to Beam workers and each worker builds its engines once, in its step's ``setup``. The driver
probes every endpoint first (``probed``): a server that is down, or that does not serve the model, is
one clear error before anything is opened or sent, and every worker keys the cache with the same
model revision. Roles that name the same (url, model) share one engine.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from judges.errors import EngineUnreachable, JudgeError

STAT_KEYS = (
    "requests",
    "sent",
    "retries",
    "cache_hits",
    "cache_misses",
    "failures",
    "prompt_tokens",
    "completion_tokens",
    "busy_seconds",
    "cost_usd",
)
# HTTPEngine options that matter for a one-off /v1/models probe.
_PROBE_OPTIONS = ("connect_timeout_s", "max_retries", "backoff_base_s", "backoff_max_s", "api_key")


@dataclass(frozen=True)
class Endpoint:
    url: str
    model: str
    revision: str = ""  # filled in by EngineSpec.probed()

    @property
    def key(self) -> tuple[str, str]:
        return self.url.rstrip("/"), self.model


@dataclass(frozen=True)
class EngineSpec:
    """Endpoints by role (policy, judge, reference) and what their engines share."""

    endpoints: Mapping[str, Endpoint]
    cache_path: str | None = None
    concurrency: int = 64
    max_usd: float | None = None
    max_requests: int | None = None
    gpu_usd_per_hour: float = 0.0
    engine_options: Mapping[str, Any] = field(default_factory=dict)  # HTTPEngine kwargs: timeout_s, max_retries, ...

    def probed(self) -> EngineSpec:
        """The spec with every endpoint's served revision (one probe per distinct url and model)."""
        revs = {ep.key: ep.revision for ep in self.endpoints.values() if ep.revision}
        for ep in self.endpoints.values():
            if ep.key not in revs:
                revs[ep.key] = probe_revision(ep.url, ep.model, **self.engine_options)
        return replace(self, endpoints={r: replace(ep, revision=revs[ep.key]) for r, ep in self.endpoints.items()})

    def build(self) -> dict[str, Any]:
        """Engines by role; one HTTPEngine per distinct (url, model), all on one cache, budget and price."""
        from judges.cache import RequestCache
        from judges.cost import Budget, Price
        from judges.http_engine import HTTPEngine

        capped = self.max_usd is not None or self.max_requests is not None
        budget = Budget(max_usd=self.max_usd, max_requests=self.max_requests) if capped else None
        price = Price(gpu_usd_per_hour=self.gpu_usd_per_hour)
        cache = RequestCache(self.cache_path) if self.cache_path else None
        engines: dict[tuple[str, str], Any] = {}
        for ep in self.endpoints.values():
            if ep.key not in engines:
                engines[ep.key] = HTTPEngine(
                    ep.key[0],
                    ep.model,
                    revision=ep.revision,
                    concurrency=self.concurrency,
                    cache=cache,
                    budget=budget,
                    price=price,
                    **dict(self.engine_options),
                )
        return {role: engines[ep.key] for role, ep in self.endpoints.items()}


def check_price(max_usd: float | None, gpu_usd_per_hour: float) -> None:
    if max_usd is not None and max_usd <= 0:
        raise JudgeError(f"--max-usd must be positive, got {max_usd}")
    if gpu_usd_per_hour < 0:
        raise JudgeError(f"--gpu-usd-per-hour must be ≥ 0, got {gpu_usd_per_hour}")
    if max_usd is not None and gpu_usd_per_hour == 0:
        raise JudgeError("--max-usd needs a price: pass --gpu-usd-per-hour (the GPU rental price)")


def probe_revision(base_url: str, model: str, **engine_options: Any) -> str:
    """The served model's revision, or a clear error when the server is down or does not serve ``model``."""
    from judges.http_engine import HTTPEngine

    opts = {k: v for k, v in engine_options.items() if k in _PROBE_OPTIONS}
    log = logging.getLogger("judges.http_engine")
    level = log.level
    log.setLevel(logging.ERROR)  # its "model not listed" warning: the error below says it better
    try:
        with HTTPEngine(base_url, model, **opts) as probe:
            revision = probe.model_revision()  # raises EngineUnreachable
    finally:
        log.setLevel(level)
    if not revision:
        raise EngineUnreachable(
            f"model {model!r} is not listed by {base_url.rstrip('/')}/v1/models "
            "(check --model against what the server serves)"
        )
    return revision


def distinct(engines: Mapping[str, Any]) -> list[Any]:
    """Each engine once (roles may share one)."""
    return list({id(e): e for e in engines.values() if e is not None}.values())


def close_engines(engines: Mapping[str, Any]) -> None:
    """Close every engine and every cache behind them, once each."""
    live = distinct(engines)
    for eng in live:
        eng.close()
    for cache in {id(c): c for c in (getattr(e, "cache", None) for e in live) if c is not None}.values():
        cache.close()


def snapshot(engines: Mapping[str, Any]) -> dict:
    """Summed stats of the distinct engines (``errors`` by reason)."""
    total: dict[str, Any] = dict.fromkeys(STAT_KEYS, 0)
    errors: dict[str, int] = {}
    for eng in distinct(engines):
        st = eng.stats.as_dict()
        for k in STAT_KEYS:
            total[k] += st.get(k) or 0
        for k, v in (st.get("errors") or {}).items():
            errors[k] = errors.get(k, 0) + v
    total["errors"] = errors
    return total


def delta(after: dict, before: dict) -> dict:
    """What happened between two snapshots."""
    d: dict[str, Any] = {k: after[k] - before[k] for k in STAT_KEYS}
    errors = {k: v - before["errors"].get(k, 0) for k, v in after["errors"].items()}
    d["errors"] = {k: v for k, v in errors.items() if v}
    return d


def add_stats(parts: list[dict]) -> dict:
    """Sum of snapshots or deltas (e.g. one per batch)."""
    total: dict[str, Any] = dict.fromkeys(STAT_KEYS, 0)
    errors: dict[str, int] = {}
    for p in parts:
        for k in STAT_KEYS:
            total[k] += p.get(k) or 0
        for k, v in (p.get("errors") or {}).items():
            errors[k] = errors.get(k, 0) + v
    total["errors"] = errors
    return total
