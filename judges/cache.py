"""Persistent request cache: a resumed or repeated run never pays twice for a call.

SQLite in WAL mode: readers never block the writer, and a committed batch survives the process
being killed (kill -9 loses at most the batch being written). One connection per thread because a
sqlite3 connection must not be shared across threads. Writes are batched into one transaction.
Only successful responses are stored, so failures are retried by the next run.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import orjson

from judges.types import Request, Response

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,           -- Request.key(revision)
    model TEXT NOT NULL,
    revision TEXT NOT NULL,
    template_id TEXT,
    request BLOB NOT NULL,          -- the JSON body that was sent
    response BLOB NOT NULL,         -- the server's JSON answer
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_s REAL NOT NULL,
    created_at REAL NOT NULL
) WITHOUT ROWID
"""
_CHUNK = 500  # keys per SELECT: below SQLite's bound-parameter limit


class RequestCache:
    def __init__(self, path: str | Path, timeout_s: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._timeout = timeout_s
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.writes = 0
        self._conn().execute(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # check_same_thread=False only so close() can close every thread's connection; each is used by one thread.
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def get_many(self, keys: Iterable[str]) -> dict[str, dict]:
        """Response bodies of the keys that are cached (missing keys are absent)."""
        keys = list(dict.fromkeys(keys))
        conn, found = self._conn(), {}
        for i in range(0, len(keys), _CHUNK):
            part = keys[i : i + _CHUNK]
            rows = conn.execute(f"SELECT key, response FROM responses WHERE key IN ({','.join('?' * len(part))})", part)
            for key, blob in rows:
                found[key] = orjson.loads(blob)
        with self._lock:
            self.hits += len(found)
            self.misses += len(keys) - len(found)
        return found

    def get(self, key: str) -> dict | None:
        return self.get_many([key]).get(key)

    def put_many(self, items: Iterable[tuple[str, Request, Response]], revision: str = "") -> int:
        """Store (key, request, response) triples in one transaction; failed responses are skipped."""
        now = time.time()
        rows = [
            (
                key,
                req.model,
                revision,
                req.template_id,
                orjson.dumps(req.body()),
                orjson.dumps(resp.body),
                resp.prompt_tokens,
                resp.completion_tokens,
                resp.latency_s,
                now,
            )
            for key, req, resp in items
            if resp.ok and resp.body is not None
        ]
        if not rows:
            return 0
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        with self._lock:
            self.writes += len(rows)
        return len(rows)

    def keys(self) -> set[str]:
        return {k for (k,) in self._conn().execute("SELECT key FROM responses")}

    def __len__(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    @property
    def stats(self) -> dict:
        """Entries on disk and this object's lookups/writes since it was opened."""
        row = (
            self._conn()
            .execute(
                "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0) FROM responses"
            )
            .fetchone()
        )
        return {
            "path": str(self.path),
            "entries": row[0],
            "prompt_tokens": row[1],
            "completion_tokens": row[2],
            "hits": self.hits,
            "misses": self.misses,
            "writes": self.writes,
        }

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()
