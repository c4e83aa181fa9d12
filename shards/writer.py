"""The shard writer: size- and count-capped WebDataset tars, written atomically.

A shard is published whole or not at all (`funfactory.shards.storage.open_write`: a temporary
name, fsync and rename on local disk; a completed upload on an object store), so a reader never
sees half a shard; its index fragment, which carries the tar's size and sha256, is written only
after the tar is published. The output folder may be a local path or any fsspec URL. Tar headers
carry no time, owner or mode that varies, so the same samples in the same order give
byte-identical shards.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tarfile
from pathlib import Path

import numpy as np

from funfactory.shards import index as shard_index
from funfactory.shards import storage
from funfactory.shards.audio import encode_flac, sha256
from funfactory.shards.keys import shard_name
from funfactory.shards.schema import SAMPLE_RATE, SchemaError, check_meta, label_estimated_wer

log = logging.getLogger(__name__)

DEFAULT_MAX_COUNT = 1000
DEFAULT_MAX_BYTES = 256 << 20


def _padded(size: int) -> int:
    return (size + tarfile.BLOCKSIZE - 1) // tarfile.BLOCKSIZE * tarfile.BLOCKSIZE


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> int:
    """Append `data` as member `name` with a header that carries no varying time, owner or mode;
    returns the offset of the member's data in the tar."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))
    return tar.offset - _padded(len(data))


class ShardWriter:
    """Write samples of one dataset split into `{dataset}-{split}-{index:06d}.tar` files.

    Use as a context manager, or call `close()`: it completes the last shard and, with
    `merge=True` (the default for a single writer), merges the split's Parquet index. Writers
    that share a split (parallel workers) pass distinct `start_index` ranges and `merge=False`,
    and one `merge_index` call joins their fragments at the end.
    """

    def __init__(self, out_dir: str | Path, dataset: str, split: str = "train", *,
                 max_count: int = DEFAULT_MAX_COUNT, max_bytes: int = DEFAULT_MAX_BYTES,
                 start_index: int = 0, merge: bool = True):
        if max_count < 1 or max_bytes < 4096:
            raise ValueError(f"max_count ({max_count}) must be >= 1 and max_bytes ({max_bytes}) "
                             ">= 4096")
        self.out_dir = storage.url_of(out_dir)
        storage.makedirs(self.out_dir)
        shard_name(dataset, split, 0)
        self.dataset, self.split = dataset, split
        self.max_count, self.max_bytes = max_count, max_bytes
        self.merge = merge
        self.next_index = start_index
        self.shards: list[Path | str] = []
        self.count = 0
        self._keys: set[str] = set()
        self._tar: tarfile.TarFile | None = None
        self._file: contextlib.ExitStack | None = None
        self._counting: storage.CountingWriter | None = None
        self._name = ""
        self._rows: list[dict] = []

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, meta: dict, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
        """Add one sample: `audio` is float in [-1, 1] or int16, mono, at 16 kHz."""
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"sample {meta.get('key')!r}: audio is {sample_rate} Hz; resample to "
                             f"{SAMPLE_RATE} Hz before writing")
        duration = len(audio) / SAMPLE_RATE
        if abs(float(meta.get("duration", -1)) - duration) > 0.02:
            raise SchemaError(f"sample {meta.get('key')!r}: duration {meta.get('duration')} s does "
                              f"not match its audio ({duration:.3f} s)")
        self.write_encoded(meta, encode_flac(audio))

    def write_encoded(self, meta: dict, flac: bytes) -> None:
        """Add one sample whose FLAC bytes are already encoded (resharding, copying)."""
        key = meta.get("key") if isinstance(meta, dict) else None
        check_meta(meta, f"sample {key!r}")
        if key in self._keys:
            raise SchemaError(f"sample key {key!r} written twice to {self.dataset}-{self.split}")
        blob = json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8")
        size = _padded(len(blob)) + _padded(len(flac)) + 2 * tarfile.BLOCKSIZE
        if self._tar is not None and (len(self._rows) >= self.max_count
                                      or self._tar.offset + size > self.max_bytes):
            self._finish_shard()
        if self._tar is None:
            self._open_shard()
        json_offset, json_size = self._add(f"{key}.json", blob)
        audio_offset, audio_size = self._add(f"{key}.flac", flac)
        self._keys.add(key)
        self.count += 1
        self._rows.append({
            "key": key, "shard": self._name, "json_offset": json_offset, "json_size": json_size,
            "audio_offset": audio_offset, "audio_size": audio_size,
            "duration": float(meta["duration"]), "language": meta["language"],
            "task": meta["task"], "text": meta["text"], "audio_sha256": sha256(flac),
            "source_id": meta["source"]["id"], "published_at": meta["source"]["published_at"],
            "label_estimated_wer": label_estimated_wer(meta),
        })

    def _add(self, name: str, data: bytes) -> tuple[int, int]:
        return add_member(self._tar, name, data), len(data)

    def _open_shard(self) -> None:
        self._name = shard_name(self.dataset, self.split, self.next_index)
        self.next_index += 1
        self._file = contextlib.ExitStack()
        handle = self._file.enter_context(storage.open_write(storage.join(self.out_dir,
                                                                          self._name)))
        self._counting = storage.CountingWriter(handle)
        self._tar = tarfile.open(fileobj=self._counting, mode="w", format=tarfile.PAX_FORMAT)

    def _finish_shard(self) -> None:
        self._tar.close()
        self._file.close()
        final = storage.as_location(storage.join(self.out_dir, self._name))
        shard_index.write_fragment(self.out_dir, self._name, self._rows,
                                   self._counting.written, self._counting.sha256)
        log.debug("wrote %s (%d samples)", final, len(self._rows))
        self.shards.append(final)
        self._tar, self._file, self._counting, self._rows = None, None, None, []

    def close(self) -> list[Path]:
        """Complete the open shard (and merge the index); returns the shards written."""
        if self._tar is not None:
            self._finish_shard()
        if self.merge:
            shard_index.merge_index(self.out_dir, self.dataset, self.split)
        return self.shards

    def abort(self) -> None:
        """Drop the open shard: nothing half-written stays behind."""
        if self._tar is not None:
            failed = RuntimeError(f"shard {self._name} aborted")
            self._file.__exit__(type(failed), failed, None)
            self._tar, self._file, self._counting, self._rows = None, None, None, []

