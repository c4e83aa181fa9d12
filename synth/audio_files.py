"""Byte-reproducible, atomic audio writes for the embedded default corpus.

The same seed must give byte-identical files. WAV and FLAC from libsndfile already do; Ogg does not,
because libsndfile gives each Ogg stream a random serial number (and so a different page CRC) on
every write. `write_audio` rewrites the serial to one derived from the file name and recomputes the
page checksums, then renames the finished file into place so a crash never leaves a partial file
under the final name.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS")}
_OGG_CAPTURE = b"OggS"
_OGG_HEADER_BYTES = 27


def _ogg_crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
        table.append(crc & 0xFFFFFFFF)
    return table


_CRC_TABLE = _ogg_crc_table()


def ogg_crc(page: bytes) -> int:
    """The Ogg page checksum (CRC-32, polynomial 0x04C11DB7, no reflection, zero init)."""
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) ^ byte) & 0xFF]
    return crc


def fix_ogg_serial(data: bytes, serial: int) -> bytes:
    """Set every page's stream serial number to `serial` and recompute the page checksums."""
    out = bytearray(data)
    offset = 0
    while offset < len(out):
        if out[offset:offset + 4] != _OGG_CAPTURE:
            raise ValueError(f"not an Ogg page at byte {offset}")
        segments = out[offset + 26]
        table_end = offset + _OGG_HEADER_BYTES + segments
        page_end = table_end + sum(out[offset + _OGG_HEADER_BYTES:table_end])
        struct.pack_into("<I", out, offset + 14, serial)
        struct.pack_into("<I", out, offset + 22, 0)
        struct.pack_into("<I", out, offset + 22, ogg_crc(bytes(out[offset:page_end])))
        offset = page_end
    return bytes(out)


def write_audio(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write float audio (mono, or frames x channels) as wav/flac/ogg from the suffix, atomically."""
    path = Path(path)
    extension = path.suffix.lstrip(".").lower()
    if extension not in FORMATS:
        raise ValueError(f"cannot write {path}: the format must be one of {sorted(FORMATS)}")
    container, subtype = FORMATS[extension]
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    sf.write(temporary, np.clip(audio, -1.0, 1.0), sample_rate, format=container, subtype=subtype)
    if extension == "ogg":
        serial = int.from_bytes(hashlib.sha256(path.name.encode()).digest()[:4], "little")
        temporary.write_bytes(fix_ogg_serial(temporary.read_bytes(), serial))
    os.replace(temporary, path)
