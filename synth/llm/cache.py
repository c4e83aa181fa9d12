"""Persistent LLM request cache: a crashed or repeated job replays answers instead of paying again.

SQLite, one row per request, keyed by the sha256 of the canonical JSON of (backend, model,
request, generation parameters). Safe across processes (WAL journal, busy timeout): Beam workers
each open their own connection to the same file. Hits and misses are counted per instance.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from funfactory.synth.llm.base import Completion, GenerationParams, Request

SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    completion TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def request_key(backend: dict, request: Request, params: GenerationParams) -> str:
    """sha256 of (backend description, request, params) as canonical JSON."""
    blob = json.dumps({"backend": backend, "request": request.as_dict(), "params": params.as_dict(),
                       "effective_seed": request.effective_seed(params)},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class RequestCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=60.0, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(SCHEMA)
        self._db.commit()
        self.hits = 0
        self.misses = 0

    def key(self, backend: dict, request: Request, params: GenerationParams) -> str:
        return request_key(backend, request, params)

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT completion FROM completions WHERE key = ?",
                                   (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return Completion(**json.loads(row[0]), cached=True)

    def put(self, key: str, completion: Completion, backend: str = "", model: str = "") -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO completions (key, backend, model, completion, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, backend, model, json.dumps(completion.as_dict(), ensure_ascii=False),
                 time.time()))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
