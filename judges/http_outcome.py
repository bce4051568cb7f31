"""What one HTTP attempt came to: success, a failure worth retrying, or a final failure.

The retry policy lives here so it can change without touching the engine: 429, 408 and 5xx, timeouts,
refused or dropped connections and truncated or non-JSON 200 bodies are transient; any other 4xx is
the request's own fault and is final. Reasons are the short codes of ``Response.error``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx
import orjson

from judges.http_transport import RawResponse

_RETRY_STATUS = {408, 429}


@dataclass
class Attempt:
    ok: bool
    body: dict | None = None
    error: str = ""
    detail: str = ""
    retry: bool = False
    retry_after: float | None = None


def one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def server_message(content: bytes) -> str:
    """The error message of an OpenAI/vLLM/FastAPI error body, else the start of the raw text."""
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return one_line(content.decode("utf-8", "replace"))
    if isinstance(data, dict):
        err = data.get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        msg = msg or data.get("message") or data.get("detail")
        if msg:
            return one_line(str(msg))
    return one_line(content.decode("utf-8", "replace"))


def retry_after(value: str | None, cap: float) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), clamped to [0, cap]."""
    if not value:
        return None
    try:
        secs = float(value)
    except ValueError:
        try:
            secs = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(secs, 0.0), cap)


def classify(r: RawResponse, retry_after_cap: float) -> Attempt:
    """Turn one HTTP answer into ok / retryable failure / final failure."""
    if 200 <= r.status < 300:
        try:
            body = orjson.loads(r.content)
        except orjson.JSONDecodeError:
            text = r.content.decode("utf-8", "replace")
            return Attempt(False, error="bad_json", detail=one_line(text, 200), retry=True)
        if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
            return Attempt(False, error="bad_body", detail="200 without a choices list", retry=True)
        return Attempt(True, body=body)
    retry = r.status in _RETRY_STATUS or r.status >= 500
    return Attempt(
        False,
        error=f"http_{r.status}",
        detail=server_message(r.content),
        retry=retry,
        retry_after=retry_after(r.header("retry-after"), retry_after_cap) if retry else None,
    )


def transport_failure(exc: httpx.HTTPError) -> Attempt:
    """A request that got no HTTP answer: refused/unroutable ("unreachable"), too slow, or cut off."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return Attempt(False, error="unreachable", detail=one_line(str(exc)), retry=True)
    if isinstance(exc, httpx.TimeoutException):
        return Attempt(False, error="timeout", detail=one_line(str(exc) or type(exc).__name__), retry=True)
    return Attempt(False, error="disconnected", detail=one_line(str(exc) or type(exc).__name__), retry=True)
