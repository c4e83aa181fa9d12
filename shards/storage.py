"""One storage layer for shards, indexes, work folders and reports: local paths or any fsspec URL.

Every job writes through these few calls, so the same code runs on a laptop disk and on an object
store (``s3://`` tested here against a local S3-compatible server; ``gs://``, ``hdfs://`` and other
fsspec protocols go through the same calls, untested here). Credentials and endpoints come from
each store's standard variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``GOOGLE_APPLICATION_CREDENTIALS``, ...).

Commit semantics (docs/architecture.md, shard contract): a file is published whole or not at all.
:func:`open_write` writes a local file under a hidden temporary name, fsyncs it, renames it and
fsyncs the folder; on an object store it uploads to the final name, which becomes visible only
when the upload completes (a failed write is discarded, never published). Nothing relies on
rename across objects, so a job publishes its data first and its marker (a manifest, an index
fragment) last.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Iterator

import fsspec


def url_of(location: str | Path) -> str:
    """``location`` as a string: an absolute local path, or the URL unchanged."""
    text = str(location)
    if text.startswith("file://"):
        text = text[len("file://"):]
    if "://" in text:
        return text.rstrip("/")
    return str(Path(text).absolute())


def is_local(location: str | Path) -> bool:
    return "://" not in str(location) or str(location).startswith("file://")


def filesystem(location: str | Path):
    """``(fsspec filesystem, path within it)``; listing caches are dropped so a listing always
    sees what other workers committed."""
    fs, path = fsspec.core.url_to_fs(url_of(location))
    if not is_local(location):
        fs.invalidate_cache()
    return fs, path


def join(base: str | Path, *parts: str) -> str:
    url = url_of(base)
    return "/".join([url.rstrip("/"), *(p.strip("/") for p in parts)])


def name_of(location: str | Path) -> str:
    return url_of(location).rstrip("/").rsplit("/", 1)[-1]


def exists(location: str | Path) -> bool:
    fs, path = filesystem(location)
    return fs.exists(path)


def size(location: str | Path) -> int:
    fs, path = filesystem(location)
    return int(fs.size(path))


def is_dir(location: str | Path) -> bool:
    fs, path = filesystem(location)
    return fs.isdir(path)


def makedirs(location: str | Path) -> None:
    """Create a local folder (object stores have no folders: nothing to do)."""
    if is_local(location):
        Path(url_of(location)).mkdir(parents=True, exist_ok=True)


def glob(pattern: str) -> list[str]:
    """Sorted URLs (or local paths) matching ``pattern``; hidden names left out."""
    fs, path = filesystem(pattern)
    found = fs.glob(path)
    remote = not is_local(pattern)
    return sorted((fs.unstrip_protocol(p) if remote else p) for p in found
                  if not p.rstrip("/").rsplit("/", 1)[-1].startswith("."))


def remove(location: str | Path) -> None:
    fs, path = filesystem(location)
    if fs.exists(path):
        fs.rm(path)


def remove_tree(location: str | Path) -> None:
    fs, path = filesystem(location)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def open_read(location: str | Path):
    fs, path = filesystem(location)
    return fs.open(path, "rb")


def read_bytes(location: str | Path) -> bytes:
    with open_read(location) as f:
        return f.read()


def read_json(location: str | Path):
    return json.loads(read_bytes(location).decode("utf-8"))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def open_write(location: str | Path) -> Iterator:
    """A binary file that is published at ``location`` whole when the block ends without an
    error, and never otherwise (module docstring)."""
    if is_local(location):
        final = Path(url_of(location))
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.partial")
        try:
            with open(tmp, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(final)
            _fsync_dir(final.parent)
        finally:
            tmp.unlink(missing_ok=True)
        return
    fs, path = filesystem(location)
    f = fs.open(path, "wb")
    try:
        yield f
    except BaseException:
        discard = getattr(f, "discard", None)
        if discard is not None:
            discard()
        f.closed = True  # nothing to publish: an unfinished upload is dropped, not completed
        raise
    f.close()


_PARTIAL_RE = re.compile(r"^\..+\.[0-9a-f]{12}\.partial$")


def remove_partials(folder: str | Path) -> int:
    """Remove the temporary files :func:`open_write` leaves under a local ``folder`` when its
    process is killed mid-write (a killed run's), and count them; an object store keeps none."""
    if not is_local(folder):
        return 0
    root = Path(url_of(folder))
    stale = [p for p in root.rglob("*.partial") if _PARTIAL_RE.match(p.name)] if root.is_dir() \
        else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def as_location(location: str | Path) -> Path | str:
    """A local ``Path`` for a local location, the URL string otherwise."""
    return Path(url_of(location)) if is_local(location) else url_of(location)


def write_bytes(location: str | Path, data: bytes) -> Path | str:
    with open_write(location) as f:
        f.write(data)
    return as_location(location)


def write_json(location: str | Path, obj) -> Path | str:
    return write_bytes(location, json.dumps(obj, ensure_ascii=False, sort_keys=True,
                                            indent=1).encode("utf-8"))


class CountingWriter:
    """Wrap a binary file: count and, unless ``hashed=False``, hash what goes through (a tar's size
    and sha256 for its index fragment, without reading the tar back)."""

    def __init__(self, f, hashed: bool = True):
        self.f = f
        self.written = 0
        self.digest = hashlib.sha256() if hashed else None

    def write(self, data) -> int:
        self.f.write(data)
        if self.digest is not None:
            self.digest.update(data)
        self.written += len(data)
        return len(data)

    def tell(self) -> int:
        return self.written

    def flush(self) -> None:
        self.f.flush()

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


def sha256_of(location: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open_read(location) as f:
        while True:
            block = f.read(chunk)
            if not block:
                return digest.hexdigest()
            digest.update(block)
