"""A lean fake OpenAI-compatible server for engine tests and the client benchmark.

A raw asyncio protocol (HTTP/1.1 keep-alive, no framework) so one process serves thousands of
requests a second. Answers are a pure function of the request body, so a test can predict them.
Faults are injected per (body hash, attempt number) from a seeded hash, so the same request sees
the same fault sequence whatever the client's concurrency or ordering. A body may also carry
``"fake_faults": ["http_500", "ok", ...]`` to script the outcome of each of its attempts.

Every request is counted by body hash (``received``, ``succeeded``), so tests can assert that no
request that once succeeded was sent again.

Run standalone (the benchmark does, so client and server don't share a GIL):
    python -m tests.judges.fake_openai_server --latency-ms 5
prints ``PORT <n>`` once listening; ``GET /_stats`` returns the counters as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import orjson

FAULTS = ("http_500", "http_429", "timeout", "drop", "truncated", "garbage")
_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
}


@dataclass
class FakeConfig:
    latency_s: float = 0.0  # fixed service time of every answer
    fault_rate: float = 0.0  # share of attempts that get a random fault from `faults`
    faults: tuple[str, ...] = FAULTS
    seed: int = 0
    retry_after: str = "0"  # Retry-After header value sent with 429s
    hang_s: float = 5.0  # a "timeout" fault sleeps this long, then closes without answering
    models: tuple[str, ...] = ("fake-judge",)


def body_hash(raw: bytes) -> str:
    """Hash of the parsed body (key order ignored): the server-side identity of a request."""
    try:
        canon = orjson.dumps(orjson.loads(raw), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        canon = raw
    return hashlib.blake2b(canon, digest_size=12).hexdigest()


def request_hash(body: dict) -> str:
    """The server-side identity of a request body a client would send (for ``Counts`` look-ups)."""
    return body_hash(orjson.dumps(body))


def _unit(*parts: object) -> float:
    h = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def answer_text(h: str, index: int = 0) -> str:
    """The deterministic answer for body hash `h`: a verdict and a score derived from the hash."""
    u = _unit(h, index)
    return f"Verdict: [[{'A' if u < 0.5 else 'B'}]] Score: {1 + int(u * 10) % 10}"


def _logprobs_chat(text: str, top: int) -> dict:
    toks = text.split(" ")
    return {
        "content": [
            {
                "token": t,
                "logprob": -0.1 * (i + 1),
                "bytes": list(t.encode()),
                "top_logprobs": [{"token": t, "logprob": -0.1 * (i + 1), "bytes": None}][:top],
            }
            for i, t in enumerate(toks)
        ]
    }


def _logprobs_completion(text: str, top: int) -> dict:
    toks = text.split(" ")
    offs, pos = [], 0
    for t in toks:
        offs.append(pos)
        pos += len(t) + 1
    return {
        "tokens": toks,
        "token_logprobs": [-0.1 * (i + 1) for i in range(len(toks))],
        "top_logprobs": [{t: -0.1 * (i + 1)} for i, t in enumerate(toks)] if top else None,
        "text_offset": offs,
    }


def completion_body(path: str, req: dict, h: str) -> dict:
    """An OpenAI-shaped response (choices, logprobs when asked, usage) derived from the request."""
    n = int(req.get("n") or 1)
    chat = path.endswith("/chat/completions")
    if chat:
        prompt = " ".join(str(m.get("content", "")) for m in req.get("messages") or [])
    else:
        prompt = str(req.get("prompt", ""))
    choices, completion_tokens = [], 0
    for i in range(n):
        text = answer_text(h, i)
        completion_tokens += len(text.split(" "))
        if chat:
            ch = {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            if req.get("logprobs"):
                ch["logprobs"] = _logprobs_chat(text, int(req.get("top_logprobs") or 0))
        else:
            ch = {"index": i, "text": text, "finish_reason": "stop"}
            if req.get("logprobs") is not None:
                ch["logprobs"] = _logprobs_completion(text, int(req.get("logprobs") or 0))
        choices.append(ch)
    return {
        "id": f"cmpl-{h}",
        "object": "chat.completion" if chat else "text_completion",
        "created": 0,
        "model": req.get("model"),
        "choices": choices,
        "usage": {
            "prompt_tokens": len(prompt.split()),
            "completion_tokens": completion_tokens,
            "total_tokens": len(prompt.split()) + completion_tokens,
        },
    }


@dataclass
class Counts:
    received: Counter = field(default_factory=Counter)  # body hash -> requests received
    succeeded: Counter = field(default_factory=Counter)  # body hash -> 200s with a valid body
    faults: Counter = field(default_factory=Counter)  # fault name -> times injected
    models_calls: int = 0
    authorization: Counter = field(default_factory=Counter)  # Authorization header value -> requests
    in_flight: int = 0  # completion requests received and not yet answered or dropped
    max_in_flight: int = 0

    def as_dict(self) -> dict:
        return {
            "received": dict(self.received),
            "succeeded": dict(self.succeeded),
            "faults": dict(self.faults),
            "models_calls": self.models_calls,
            "max_in_flight": self.max_in_flight,
            "total": sum(self.received.values()),
        }


class _Conn(asyncio.Protocol):
    def __init__(self, server: FakeOpenAIServer):
        self.s = server
        self.buf = bytearray()
        self.tr: asyncio.Transport | None = None
        self.busy = False  # one request at a time per connection keeps responses in order
        self.counted = False  # this connection's current request is in Counts.in_flight

    def connection_made(self, transport):  # type: ignore[override]
        self.tr = transport
        self.s._conns.add(transport)

    def connection_lost(self, exc):  # type: ignore[override]
        self.s._conns.discard(self.tr)
        self.tr = None
        self._uncount()

    def _uncount(self) -> None:
        if self.counted:
            self.counted = False
            self.s.counts.in_flight -= 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._next()

    def _next(self) -> None:
        if self.busy or self.tr is None:
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        method, path, _ = head[0].split(" ", 2)
        length, auth = 0, ""
        for line in head[1:]:
            k, _, v = line.partition(":")
            k = k.strip().lower()
            if k == "content-length":
                length = int(v)
            elif k == "authorization":
                auth = v.strip()
        if len(self.buf) < end + 4 + length:
            return
        body = bytes(self.buf[end + 4 : end + 4 + length])
        del self.buf[: end + 4 + length]
        self.busy = True
        self.s.counts.authorization[auth] += 1
        self.s._handle(self, method, path.split("?", 1)[0], body)

    def send(self, status: int, payload: bytes, ctype: bytes = b"application/json", extra: bytes = b"") -> None:
        if self.tr is None:
            return
        self._uncount()
        self.tr.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
            % (status, _REASONS.get(status, b"X"), ctype, len(payload), extra)
            + payload
        )
        self.busy = False
        self._next()

    def drop(self) -> None:
        if self.tr is not None:
            self.tr.close()


class FakeOpenAIServer:
    """Start with ``start()`` (background thread, random port on 127.0.0.1), stop with ``stop()``."""

    def __init__(self, config: FakeConfig | None = None):
        self.config = config or FakeConfig()
        self.counts = Counts()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_idle(self, settle_s: float = 0.05, deadline_s: float = 30.0) -> None:
        """Block until no request is in flight and none arrived for `settle_s` (bytes a killed or cancelled
        client wrote are still counted when the server reads them, so snapshot counts only after this)."""
        end, last, stable_since = time.monotonic() + deadline_s, None, time.monotonic()
        while time.monotonic() < end:
            now_total = (sum(self.counts.received.values()), self.counts.in_flight)
            if now_total != last:
                last, stable_since = now_total, time.monotonic()
            elif now_total[1] <= 0 and time.monotonic() - stable_since >= settle_s:
                return
            time.sleep(0.005)

    # --- request handling -------------------------------------------------------------------
    def _fault_for(self, req: dict, h: str, attempt: int) -> str:
        scripted = req.get("fake_faults")
        if isinstance(scripted, list):
            return scripted[attempt] if attempt < len(scripted) else "ok"
        cfg = self.config
        if cfg.fault_rate and _unit(cfg.seed, h, attempt) < cfg.fault_rate:
            return cfg.faults[int(_unit("kind", cfg.seed, h, attempt) * len(cfg.faults))]
        return "ok"

    def _handle(self, conn: _Conn, method: str, path: str, raw: bytes) -> None:
        if method == "GET" and path == "/v1/models":
            self.counts.models_calls += 1
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake", "root": f"/models/{m}@rev1"}
                for m in self.config.models
            ]
            return conn.send(200, orjson.dumps({"object": "list", "data": data}))
        if method == "GET" and path == "/_stats":
            return conn.send(200, orjson.dumps(self.counts.as_dict()))
        if method != "POST" or path not in ("/v1/chat/completions", "/v1/completions"):
            return conn.send(404, orjson.dumps({"error": {"message": f"no route {method} {path}"}}))
        h = body_hash(raw)
        with self._lock:
            c = self.counts
            attempt = c.received[h]
            c.received[h] += 1
            c.in_flight += 1
            c.max_in_flight = max(c.max_in_flight, c.in_flight)
            conn.counted = True
        try:
            req = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return conn.send(400, orjson.dumps({"error": {"message": "request body is not JSON"}}))
        fault = self._fault_for(req, h, attempt)
        if fault != "ok":
            self.counts.faults[fault] += 1
        if fault == "http_400":
            return conn.send(400, orjson.dumps({"error": {"message": "max_tokens must be positive"}}))
        if fault == "timeout":
            self._loop.call_later(self.config.hang_s, conn.drop)
            return
        if fault == "drop":
            return conn.drop()
        if req.get("model") not in self.config.models:
            return conn.send(404, orjson.dumps({"error": {"message": f"model {req.get('model')!r} not found"}}))
        payload = orjson.dumps(completion_body(path, req, h))

        def reply() -> None:
            if fault == "http_500":
                conn.send(500, b'{"error": {"message": "internal error"}}')
            elif fault == "http_429":
                conn.send(
                    429,
                    b'{"error": {"message": "slow down"}}',
                    extra=b"Retry-After: %s\r\n" % self.config.retry_after.encode(),
                )
            elif fault == "truncated":
                conn.send(200, payload[: len(payload) // 2])
            elif fault == "garbage":
                conn.send(200, b"<html>502 upstream hiccup</html>", ctype=b"text/html")
            else:
                with self._lock:
                    self.counts.succeeded[h] += 1
                conn.send(200, payload)

        if self.config.latency_s:
            self._loop.call_later(self.config.latency_s, reply)
        else:
            reply()

    # --- lifecycle ------------------------------------------------------------------------------
    async def _serve(self, port: int = 0) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(lambda: _Conn(self), "127.0.0.1", port, backlog=2048)
        self.port = self._server.sockets[0].getsockname()[1]

    def start(self) -> FakeOpenAIServer:
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            loop.run_until_complete(self._serve())
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=main, name="fake-openai-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake server did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return

        def shutdown() -> None:
            self._server.close()
            for tr in list(self._conns):
                tr.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(shutdown)
        self._thread.join(10)
        self._thread = None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency-ms", type=float, default=5.0)
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    srv = FakeOpenAIServer(FakeConfig(latency_s=args.latency_ms / 1000, fault_rate=args.fault_rate, seed=args.seed))

    async def run() -> None:
        await srv._serve(args.port)
        print(f"PORT {srv.port}", flush=True)
        await asyncio.Event().wait()  # until killed

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
