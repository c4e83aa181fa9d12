"""Atomic file writes: a temporary name in the same folder, fsync, rename. A reader (or a resumed
run) sees either the old file or the whole new one, never a part."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return path


def write_json_atomic(path: str | Path, obj) -> Path:
    return write_bytes_atomic(path, json.dumps(obj, ensure_ascii=False, sort_keys=True,
                                               indent=1).encode("utf-8"))
