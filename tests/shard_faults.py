"""Planting faults in shard sets: the tests' own saboteur."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np

from funfactory.shards.keys import segment_key
from funfactory.shards.schema import new_meta
from funfactory.shards.writer import ShardWriter


def sample_meta(i: int, text: str, audio: np.ndarray, **extra) -> dict:
    return new_meta(key=segment_key("srctest0001", i), text=text, language="en",
                    duration=len(audio) / 16000, source_id="srctest0001",
                    uri="file:///corpus/test.wav", offset=float(i), published_at="2025-07-02",
                    pipeline="test", version="0.1.0", config_sha256="0" * 64, **extra)


def write_clips(folder: Path, clips, *, dataset: str = "demo", split: str = "train",
                max_count: int = 1000) -> list[Path]:
    with ShardWriter(folder, dataset, split, max_count=max_count) as writer:
        for i, (text, audio) in enumerate(clips):
            writer.write(sample_meta(i, text, audio), audio)
    return writer.shards


def rewrite_members(shard: Path, edit) -> None:
    """Rewrite `shard` with `edit(name, data) -> [(name, data), ...]` applied to each member."""
    with tarfile.open(shard) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(shard, "w") as tar:
        for name, data in members:
            for new_name, new_data in edit(name, data):
                info = tarfile.TarInfo(new_name)
                info.size = len(new_data)
                tar.addfile(info, io.BytesIO(new_data))


def hostile_tar(path: Path, kind: str) -> Path:
    """A tar whose one dangerous member is of `kind`: absolute, dotdot, symlink, hardlink, huge."""
    info = tarfile.TarInfo("x.json")
    payload = b'{"evil": true}'
    if kind == "absolute":
        info.name = "/tmp/funfactory-evil.json"
    elif kind == "dotdot":
        info.name = "../../funfactory-evil.json"
    elif kind in ("symlink", "hardlink"):
        info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
        info.linkname = "/etc/passwd"
        payload = b""
    elif kind == "huge":
        # Only the header: it claims a terabyte that never follows.
        info.name, info.size = "x.flac", 1 << 40
        path.write_bytes(info.tobuf(tarfile.GNU_FORMAT) + b"\0" * 1024)
        return path
    info.size = len(payload)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(payload))
    path.write_bytes(buf.getvalue())
    return path
