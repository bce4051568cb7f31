"""The default engine: an OpenAI-compatible server (``vllm serve``, ``prefmill llm serve``) over HTTP.

High concurrency keeps vLLM's continuous batching full. One ``httpx.AsyncClient`` per event loop
(normally exactly one) on the O(1) keep-alive pool of judges/http_transport.py; completions go
through the pool's raw ``request()`` (httpx's request model would cost 7x the CPU, see there);
a semaphore bounds requests in flight. Every row ends as a ``Response``: transient failures
(judges/http_outcome.py says which) are retried with full-jitter exponential backoff, honouring
Retry-After, up to ``max_retries``; other 4xx fail at once with the server's message. Only a
server that cannot be reached at all raises (``EngineUnreachable``): then no row can succeed.

Resume: the cache is consulted before anything is sent, identical requests in one call are sent
once, and each success is committed to the cache before ``on_result`` reports it — so a row a
progress bar has counted is never paid for again, even after kill -9.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable

import httpx
import orjson

from judges.cache import RequestCache
from judges.cost import Budget, BusyMeter, Price
from judges.errors import EngineUnreachable
from judges.http_outcome import classify, one_line, transport_failure
from judges.http_transport import PooledTransport, origin_of
from judges.types import EngineStats, Request, Response

log = logging.getLogger(__name__)

OnResult = Callable[[int, Response], None]  # (index in the input list, its response)
_PATHS = {"chat": "/v1/chat/completions", "completion": "/v1/completions"}


def revision_from_models(data: object, model: str) -> str:
    """The served model's revision from a /v1/models answer: its ``root`` (vLLM: the weights path, which
    for a hub snapshot contains the commit), else its id. Not ``created``: vLLM stamps it per call."""
    models = data.get("data") if isinstance(data, dict) else None
    for m in models if isinstance(models, list) else []:
        if isinstance(m, dict) and m.get("id") == model:
            return str(m.get("root") or m.get("id"))
    return ""


class _LoopState:
    """What must not cross event loops: the client and its pool (their sockets) and the semaphore."""

    def __init__(self, engine: HTTPEngine):
        self.pool = PooledTransport(max_keepalive=engine.concurrency)
        self.client = httpx.AsyncClient(
            base_url=engine.base_url,
            transport=self.pool,
            timeout=httpx.Timeout(engine.timeout_s, connect=engine.connect_timeout_s),
            headers=engine._headers,
            trust_env=False,
        )
        url = httpx.URL(engine.base_url)
        self.origin = origin_of(url)
        prefix = url.raw_path.rstrip(b"/")
        headers = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in engine._headers.items())
        host = b"Host: %s\r\n" % url.netloc
        self.heads = {
            kind: b"POST %s%s HTTP/1.1\r\n" % (prefix, path.encode()) + host + headers for kind, path in _PATHS.items()
        }
        self.sem = asyncio.Semaphore(engine.concurrency)


class _CacheWriter:
    """Batches successes into one cache transaction per event-loop turn, then reports them."""

    def __init__(self, cache: RequestCache | None, revision: str, report: Callable[[list[int], Response], None]):
        self.cache, self.revision, self.report = cache, revision, report
        self.pending: list[tuple[str, Request, Response, list[int]]] = []
        self.scheduled = False

    def add(self, key: str, req: Request, resp: Response, idxs: list[int]) -> None:
        if self.cache is None or not resp.ok:
            self.report(idxs, resp)
            return
        self.pending.append((key, req, resp, idxs))
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        items, self.pending = self.pending, []
        if not items:
            return
        try:
            if self.cache is not None:
                self.cache.put_many(((k, r, resp) for k, r, resp, _ in items), self.revision)
        except Exception as exc:  # a full disk loses resumability, not the rows already answered
            log.error("request cache write failed (%d rows will be re-sent on resume): %s", len(items), exc)
        for _, _, resp, idxs in items:
            self.report(idxs, resp)


class HTTPEngine:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        revision: str = "",
        concurrency: int = 256,
        timeout_s: float = 60,
        connect_timeout_s: float = 5,
        max_retries: int = 4,
        backoff_base_s: float = 0.25,
        backoff_max_s: float = 8,
        retry_after_max_s: float = 60,
        cache: RequestCache | None = None,
        budget: Budget | None = None,
        price: Price | None = None,
    ):
        if budget is not None and budget.max_usd is not None and price is None:
            raise ValueError("Budget(max_usd=...) needs a Price to convert GPU-seconds into dollars")
        base = base_url.rstrip("/")
        self.base_url = base[:-3] if base.endswith("/v1") else base  # accept the OpenAI-SDK style ".../v1"
        self.model = model
        self.revision = revision
        self._revision_given = bool(revision)
        self.concurrency = max(1, int(concurrency))
        self.timeout_s, self.connect_timeout_s = timeout_s, connect_timeout_s
        self.max_retries = max(0, int(max_retries))
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.retry_after_max_s = retry_after_max_s
        self.cache, self.budget, self.price = cache, budget, price
        self.stats = EngineStats()
        self.meter = BusyMeter()
        self._headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "user-agent": "prefmill-judges",
        }
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._states: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        self._ready = False
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._sleep = asyncio.sleep  # tests swap these to observe backoff without waiting
        self._rng = random.Random()

    @property
    def budget_exhausted(self) -> bool:
        return self.budget is not None and self.budget.exhausted

    # --- setup ----------------------------------------------------------------------------------
    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        st = self._states.get(loop)
        if st is None:
            self._states = {lp: s for lp, s in self._states.items() if not lp.is_closed()}
            st = self._states[loop] = _LoopState(self)
        return st

    async def _ensure_ready(self) -> None:
        """First call: check the server answers (else EngineUnreachable) and learn the model revision."""
        if self._ready:
            return
        data = await self._models()
        if not self._revision_given:
            self.revision = revision_from_models(data, self.model)
            if not self.revision:
                log.warning(
                    "model %r not listed by %s/v1/models; cache keys use an empty revision", self.model, self.base_url
                )
        self._ready = True

    async def _models(self) -> dict | None:
        """GET /v1/models with retries. None when the server answers but not with a model list (reachable,
        revision unknown); EngineUnreachable when no attempt could even connect."""
        client, last, connected = self._state().client, "", False
        for attempt in range(self.max_retries + 1):
            try:
                r = await client.get("/v1/models")
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                last = one_line(str(exc) or type(exc).__name__)
            except httpx.HTTPError:  # connected, then timed out or was cut off: transient
                connected = True
            else:
                if r.status_code < 500:
                    try:
                        return orjson.loads(r.content) if r.status_code == 200 else None
                    except orjson.JSONDecodeError:
                        return None
                connected = True
            if attempt < self.max_retries:
                await self._sleep(self._backoff(attempt + 1))
        if connected:
            return None
        raise EngineUnreachable(f"cannot reach the LLM server at {self.base_url}: {last}")

    def model_revision(self) -> str:
        """The revision used in cache keys (fetched from /v1/models unless given)."""
        if not self._ready:
            self._in_thread(self._ensure_ready())
        return self.revision

    # --- running ----------------------------------------------------------------------------------
    async def arun(self, requests: Iterable[Request], on_result: OnResult | None = None) -> list[Response]:
        requests = list(requests)
        self.stats.requests += len(requests)
        if not requests:
            return []
        await self._ensure_ready()
        state = self._state()
        groups: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(req.key(self.revision), []).append(i)
        results: list[Response | None] = [None] * len(requests)

        def report(idxs: list[int], resp: Response) -> None:
            for i in idxs:
                results[i] = resp
                if on_result is not None:
                    try:
                        on_result(i, resp)
                    except Exception:  # a broken progress bar must not stop a run
                        log.exception("on_result callback failed")

        hits = self.cache.get_many(groups) if self.cache is not None else {}
        todo: list[tuple[str, list[int]]] = []
        for key, idxs in groups.items():
            if key in hits:
                self.stats.cache_hits += len(idxs)
                report(idxs, Response(ok=True, body=hits[key], cached=True))
            else:  # duplicates of a request in the same call ride along with it
                self.stats.cache_misses += 1
                self.stats.cache_hits += len(idxs) - 1
                todo.append((key, idxs))

        writer = _CacheWriter(self.cache, self.revision, report)
        jobs = iter(todo)

        async def worker() -> None:
            for key, idxs in jobs:
                resp = await self._send(state, requests[idxs[0]])
                if not resp.ok:
                    self.stats.failures += len(idxs)
                    err = resp.error or "failed"
                    self.stats.errors[err] = self.stats.errors.get(err, 0) + len(idxs)
                writer.add(key, requests[idxs[0]], resp, idxs)

        workers = [asyncio.ensure_future(worker()) for _ in range(min(self.concurrency, len(todo)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        finally:
            writer.flush()  # what was answered before a cancel or an error is kept
        return results  # type: ignore[return-value]

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^(attempt-1))]."""
        return self._rng.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1)))

    async def _send(self, state: _LoopState, req: Request) -> Response:
        if self.budget is not None and not self.budget.admit():
            return Response(ok=False, error="budget_exhausted", detail=_budget_detail(self.budget))
        content, head = orjson.dumps(req.body()), state.heads[req.kind]
        t0, share, attempts, all_connect = time.perf_counter(), 0.0, 0, True
        while True:
            attempts += 1
            async with state.sem:
                token = self.meter.start()
                self.stats.sent += 1
                try:
                    raw = await state.pool.request(
                        state.origin, head, content, connect_timeout=self.connect_timeout_s, read_timeout=self.timeout_s
                    )
                    a = classify(raw, self.retry_after_max_s)
                except httpx.HTTPError as exc:
                    a = transport_failure(exc)
                finally:
                    share += self.meter.stop(token)
                    self.stats.busy_seconds = self.meter.busy_s
            all_connect = all_connect and a.error == "unreachable"
            if a.ok or not a.retry or attempts > self.max_retries:
                break
            self.stats.retries += 1
            await self._sleep(a.retry_after if a.retry_after is not None else self._backoff(attempts))
        resp = Response(
            ok=a.ok,
            body=a.body,
            error=a.error or None,
            detail=a.detail,
            latency_s=time.perf_counter() - t0,
            attempts=attempts,
            gpu_seconds=share,
        )
        self._charge(resp)
        if all_connect and not a.ok:
            await self._models()  # raises EngineUnreachable if the server is gone; else the row just fails
        return resp

    def _charge(self, resp: Response) -> None:
        pt, ct = resp.prompt_tokens, resp.completion_tokens
        self.stats.prompt_tokens += pt
        self.stats.completion_tokens += ct
        usd = self.price.cost(resp.gpu_seconds, pt, ct) if self.price is not None else 0.0
        self.stats.cost_usd += usd
        if self.budget is not None:
            self.budget.charge(pt + ct, usd)

    # --- sync wrapper and lifecycle -----------------------------------------------------------------
    def _in_thread(self, coro):
        """Run `coro` on the engine's private event-loop thread, so sync callers work inside or outside
        a running loop. Interrupting the caller cancels the coroutine (which still flushes the cache)."""
        with self._thread_lock:
            if self._thread_loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="prefmill-http-engine", daemon=True)
                self._thread.start()
                self._thread_loop = loop
        done = threading.Event()

        async def guarded():
            try:
                return await coro
            finally:
                done.set()

        fut = asyncio.run_coroutine_threadsafe(guarded(), self._thread_loop)
        try:
            return fut.result()
        except BaseException:
            fut.cancel()
            done.wait(30)
            raise

    def run(self, requests: Iterable[Request], on_result: OnResult | None = None) -> list[Response]:
        return self._in_thread(self.arun(requests, on_result))

    async def aclose(self) -> None:
        """Close the client of the running loop (for async callers that don't use `run`)."""
        st = self._states.pop(asyncio.get_running_loop(), None)
        if st is not None:
            await st.client.aclose()

    def close(self) -> None:
        loop = self._thread_loop
        if loop is not None:
            if loop in self._states:
                asyncio.run_coroutine_threadsafe(self.aclose(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            loop.close()
            self._thread_loop = self._thread = None
        for lp, st in list(self._states.items()):  # clients of other loops: close their sockets if we can
            if not lp.is_closed():
                lp.call_soon_threadsafe(_close_client, st)
        self._states.clear()

    def __enter__(self) -> HTTPEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _close_client(st: _LoopState) -> None:
    asyncio.ensure_future(st.client.aclose())


def _budget_detail(b: Budget) -> str:
    caps = [
        f"{name}={cap}"
        for name, cap in (("max_requests", b.max_requests), ("max_tokens", b.max_tokens), ("max_usd", b.max_usd))
        if cap is not None
    ]
    return f"budget exhausted ({', '.join(caps)}); rerun with a larger budget to resume from the cache"
