"""A lean HTTP/1.1 keep-alive connection pool, usable raw or as an ``httpx.AsyncClient`` transport.

Why not httpx's default (httpcore) pool: its bookkeeping scans every pooled connection, and for each
idle one every connection again, on each request (O(N^2) per request). Measured against the local
fake server with 5 ms latency: 858 req/s at 8 connections, 387 at 16, 195 at 256 — it gets slower
as concurrency grows, the opposite of what a judge needs to fill vLLM's batches. This pool checks a
connection out and back in O(1) (a stack of idle connections per origin).

Why a raw ``request()`` next to the httpx adapter: httpx's per-request model (URL parsing, header
objects, cookie jar) costs ~250 us of client CPU per request on the 2-core dev box, against ~36 us for
the whole raw round trip — it alone would cap the engine near 1,000 req/s. The engine's hot path
calls ``request()``; its ``httpx.AsyncClient`` (same pool) serves the rare calls like /v1/models.

Scope: what an OpenAI-compatible JSON API needs — one request at a time per connection, bodies with
Content-Length or chunked encoding, optional TLS. Errors are httpx's exception types, so callers
handle them as with any httpx transport. Nothing is retried here: every attempt is the caller's.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from typing import NamedTuple, cast

import httpx

_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Conn(asyncio.Protocol):
    """One keep-alive connection; parses a single response at a time into (status, headers, body)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._buf = bytearray()
        self._waiter: asyncio.Future | None = None
        # (status, headers, content length or -1, chunked, close after) once the head is parsed
        self._head: tuple[int, list[tuple[bytes, bytes]], int, bool, bool] | None = None

    # asyncio.Protocol callbacks ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        w = self._waiter
        if w is None or w.done():
            return
        if self._head is not None and self._head[2] < 0 and not self._head[3]:  # body delimited by close
            w.set_result((self._head[0], self._head[1], bytes(self._buf), False))
        else:
            w.set_exception(httpx.RemoteProtocolError("server disconnected without sending a complete response"))

    def eof_received(self) -> bool:
        return False  # close our side too

    def data_received(self, data: bytes) -> None:
        self._buf += data
        w = self._waiter
        if w is None:  # unsolicited bytes on an idle connection: it can no longer be trusted
            self.close()
            return
        if w.done():
            return
        try:
            res = self._parse()
        except (ValueError, IndexError) as exc:
            w.set_exception(httpx.RemoteProtocolError(f"malformed HTTP response: {exc}"))
            self.close()
            return
        if res is not None:
            w.set_result(res)

    # request / response ---------------------------------------------------------------------------
    async def roundtrip(self, data: bytes, timeout: float | None) -> tuple:
        loop = asyncio.get_running_loop()
        self._waiter = w = loop.create_future()
        self._buf.clear()
        self._head = None
        assert self.transport is not None, "roundtrip on a connection that was never made"
        self.transport.write(data)
        timer = loop.call_later(timeout, _expire, w) if timeout else None
        try:
            return await w
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _parse(self) -> tuple | None:
        buf = self._buf
        if self._head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return None
            lines = bytes(buf[:end]).split(b"\r\n")
            del buf[: end + 4]
            status = int(lines[0].split(b" ", 2)[1])
            headers, length, chunked, close = [], -1, False, lines[0].startswith(b"HTTP/1.0")
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                k, v = k.strip(), v.strip()
                headers.append((k, v))
                lk = k.lower()
                if lk == b"content-length":
                    length = int(v)
                elif lk == b"transfer-encoding":
                    chunked = b"chunked" in v.lower()
                elif lk == b"connection":
                    close = v.lower() == b"close"
            if status in (204, 304) or 100 <= status < 200:
                length = 0
            self._head = (status, headers, length, chunked, close)
        status, headers, length, chunked, close = self._head
        if chunked:
            body = _dechunk(buf)
            if body is None:
                return None
        elif length >= 0:
            if len(buf) < length:
                return None
            body = bytes(buf[:length])
        else:
            return None  # body delimited by connection close: finished in connection_lost
        if close:
            self.close()
        return status, headers, body, not close

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(w: asyncio.Future) -> None:
    if not w.done():
        w.set_exception(httpx.ReadTimeout("timed out waiting for the response"))


def _dechunk(buf: bytearray) -> bytes | None:
    """The body of a complete chunked message in `buf`, or None while incomplete."""
    out, pos = bytearray(), 0
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        if size == 0:
            return bytes(out) if buf.find(b"\r\n\r\n", eol) >= 0 else None
        start = eol + 2
        if len(buf) < start + size + 2:
            return None
        out += buf[start : start + size]
        pos = start + size + 2


class RawResponse(NamedTuple):
    status: int
    headers: list[tuple[bytes, bytes]]
    content: bytes

    def header(self, name: str) -> str | None:
        want = name.lower().encode()
        for k, v in self.headers:
            if k.lower() == want:
                return v.decode("latin-1")
        return None


def origin_of(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 80)


class PooledTransport(httpx.AsyncBaseTransport):
    """Keep-alive pool: at most `max_keepalive` idle connections per origin, expired after `keepalive_expiry_s`
    (below uvicorn's 5 s default, so we rarely reuse a connection the server is about to close)."""

    def __init__(
        self, max_keepalive: int = 256, keepalive_expiry_s: float = 4.0, ssl_context: ssl.SSLContext | None = None
    ):
        self.max_keepalive = max_keepalive
        self.keepalive_expiry_s = keepalive_expiry_s
        self._ssl = ssl_context
        self._idle: dict[tuple, deque[_Conn]] = {}
        self._all: set[_Conn] = set()

    async def request(
        self,
        origin: tuple[str, str, int],
        head: bytes,
        body: bytes,
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
    ) -> RawResponse:
        """Send one request. `head` is the request line plus header lines (no Content-Length, no blank line)."""
        conn = self._checkout(origin) or await self._connect(origin, connect_timeout)
        try:
            status, headers, content, keep = await conn.roundtrip(
                head + b"Content-Length: %d\r\n\r\n" % len(body) + body, read_timeout
            )
        except BaseException:
            self._discard(conn)  # a half-read response poisons the connection
            raise
        if keep and not conn.closed:
            self._checkin(origin, conn)
        else:
            self._discard(conn)
        return RawResponse(status, headers, content)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        timeouts = request.extensions.get("timeout") or {}
        head = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), url.raw_path)]
        head += [b"%s: %s\r\n" % kv for kv in request.headers.raw if kv[0].lower() != b"content-length"]
        r = await self.request(
            origin_of(url),
            b"".join(head),
            request.content,
            connect_timeout=timeouts.get("connect"),
            read_timeout=timeouts.get("read"),
        )
        return httpx.Response(r.status, headers=r.headers, content=r.content, request=request)

    def _checkout(self, origin: tuple) -> _Conn | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # most recently used first: the least likely to have been closed
            if not conn.closed and now - conn.idle_since < self.keepalive_expiry_s:
                return conn
            self._discard(conn)
        return None

    def _checkin(self, origin: tuple, conn: _Conn) -> None:
        idle = self._idle.setdefault(origin, deque())
        if len(idle) >= self.max_keepalive:
            self._discard(conn)
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def _discard(self, conn: _Conn) -> None:
        conn.close()
        self._all.discard(conn)

    async def _connect(self, origin: tuple, timeout: float | None) -> _Conn:
        scheme, host, port = origin
        if scheme == "https" and self._ssl is None:
            self._ssl = ssl.create_default_context()  # once: building a context loads the CA store
        ctx = self._ssl if scheme == "https" else None
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(_Conn, host, port, ssl=ctx, server_hostname=host if ctx else None), timeout
            )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connect to {host}:{port} timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"{exc.strerror or exc} ({host}:{port})") from exc
        self._all.add(conn)
        return conn

    async def aclose(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
