"""The streaming shard reader: tars from any fsspec path or URL, FLAC decoded with soundfile.

Shards are read front to back as streams (no seeking, so object stores and HTTP work), members
are checked before they are read (`safety.check_member`), and a bad member or a broken shard is
logged and counted in `errors` by reason; the reader goes on with the next sample or shard.
"""

from __future__ import annotations

import collections
import json
import logging
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import braceexpand
import fsspec
import numpy as np

from funfactory.errors import FunfactoryError, UnsafeInputError
from funfactory.shards import storage
from funfactory.shards.audio import AudioDecodeError, decode_flac
from funfactory.shards.safety import check_member
from funfactory.shards.schema import validate_meta

log = logging.getLogger(__name__)

MAX_LOGGED_ERRORS = 1000


@dataclass
class Sample:
    key: str
    meta: dict
    flac: bytes
    shard: str
    audio: np.ndarray | None = None
    sample_rate: int = 16000


@dataclass
class ReadError:
    shard: str
    key: str | None
    reason: str
    detail: str


def expand_urls(urls: str | Path | Iterable[str | Path]) -> list[str]:
    """Shard URLs from a folder (local or on any fsspec store), a glob, a brace pattern
    ('a-{000000..000009}.tar') or a list."""
    if isinstance(urls, (str, Path)):
        spec = str(urls)
        local = Path(spec)
        if local.is_dir():
            found = sorted(str(p) for p in local.glob("*.tar") if not p.name.startswith("."))
            if not found:
                raise FunfactoryError(f"no shards (*.tar) in folder {spec}")
            return found
        if "://" in spec and not any(c in spec for c in "*?[{") and storage.is_dir(spec):
            found = storage.glob(storage.join(spec, "*.tar"))
            if not found:
                raise FunfactoryError(f"no shards (*.tar) in folder {spec}")
            return found
        expanded: list[str] = []
        for item in braceexpand.braceexpand(spec):
            if any(c in item for c in "*?["):
                fs, _, paths = fsspec.get_fs_token_paths(item)
                expanded += sorted(fs.unstrip_protocol(p) if "://" in item else p for p in paths)
            else:
                expanded.append(item)
        return expanded
    out: list[str] = []
    for u in urls:
        out += expand_urls(u)
    return out


class ShardReader:
    """Iterate `Sample`s of shards in order. `decode=False` leaves audio as FLAC bytes."""

    def __init__(self, urls: str | Path | Iterable[str | Path], *, decode: bool = True,
                 validate: bool = True):
        self.urls = expand_urls(urls)
        self.decode = decode
        self.validate = validate
        self.errors: collections.Counter[str] = collections.Counter()
        self.error_log: list[ReadError] = []
        self.samples_read = 0

    def _error(self, shard: str, key: str | None, reason: str, detail: str) -> None:
        self.errors[reason] += 1
        if len(self.error_log) < MAX_LOGGED_ERRORS:
            self.error_log.append(ReadError(shard, key, reason, detail))
        log.warning("shard %s, sample %s: %s (%s)", shard, key, reason, detail)

    def __iter__(self) -> Iterator[Sample]:
        for url in self.urls:
            yield from self.read_shard(url)

    def read_shard(self, url: str) -> Iterator[Sample]:
        try:
            with fsspec.open(url, "rb") as stream:
                yield from self._samples(url, stream)
        except FileNotFoundError:
            self._error(url, None, "missing_shard", "no such file")

    def _samples(self, url: str, stream) -> Iterator[Sample]:
        current: str | None = None
        parts: dict[str, bytes] = {}
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    check_member(member, url)
                    key, _, ext = member.name.partition(".")
                    if key != current:
                        if current is not None:
                            sample = self._assemble(url, current, parts)
                            if sample is not None:
                                yield sample
                        current, parts = key, {}
                    if ext in parts:
                        self._error(url, key, "duplicate_member", f"{member.name} appears twice")
                        continue
                    parts[ext] = tar.extractfile(member).read()
        except UnsafeInputError as e:
            self._error(url, current, "unsafe_member", str(e))
            return
        except (tarfile.TarError, EOFError, OSError) as e:
            self._error(url, current, "broken_shard", f"{type(e).__name__}: {e}")
            return
        if current is not None:
            sample = self._assemble(url, current, parts)
            if sample is not None:
                yield sample

    def _assemble(self, url: str, key: str, parts: dict[str, bytes]) -> Sample | None:
        if "json" not in parts or "flac" not in parts:
            self._error(url, key, "incomplete_sample",
                        f"has {sorted(parts)}, needs json and flac")
            return None
        try:
            meta = json.loads(parts["json"])
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            self._error(url, key, "bad_json", str(e))
            return None
        if self.validate:
            problems = validate_meta(meta)
            if problems:
                self._error(url, key, "schema", "; ".join(problems))
                return None
            if meta["key"] != key:
                self._error(url, key, "key_mismatch", f"JSON says key {meta['key']!r}")
                return None
        sample = Sample(key=key, meta=meta, flac=parts["flac"], shard=url)
        if self.decode:
            try:
                sample.audio, sample.sample_rate = decode_flac(parts["flac"])
            except AudioDecodeError as e:
                self._error(url, key, "bad_audio", str(e))
                return None
        self.samples_read += 1
        return sample


def read_member(shard: str | Path, offset: int, size: int) -> bytes:
    """One member's bytes by its index offset (random access for `inspect` and lookups)."""
    with fsspec.open(str(shard), "rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise FunfactoryError(f"shard {shard} is shorter than its index says "
                              f"(member at {offset} of {size} bytes)")
    return data
