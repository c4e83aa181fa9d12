"""FLAC encoding and decoding of shard members with soundfile (16 kHz mono, 16-bit).

Audio is stored as 16-bit PCM: `encode_flac` quantises float input once, and
`decode_flac(encode_flac(x))` then round-trips bit-exactly for anything already on the 16-bit
grid (for example, audio that came out of a shard).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import soundfile as sf

from funfactory.errors import FunfactoryError
from funfactory.shards.schema import SAMPLE_RATE


class AudioDecodeError(FunfactoryError):
    """A member's bytes are not decodable audio."""


def to_int16(audio: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1] (or int16) -> int16, clipping instead of wrapping around."""
    if audio.dtype == np.int16:
        return audio
    scaled = np.round(np.asarray(audio, dtype=np.float64) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def encode_flac(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    if audio.ndim != 1:
        raise ValueError(f"shard audio must be mono (1-D), got shape {audio.shape}")
    if audio.size == 0:
        raise ValueError("shard audio is empty")
    buf = io.BytesIO()
    sf.write(buf, to_int16(audio), sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode_flac(data: bytes, dtype: str = "float32") -> tuple[np.ndarray, int]:
    try:
        audio, sr = sf.read(io.BytesIO(data), dtype=dtype, always_2d=False)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise AudioDecodeError(f"audio member is not decodable FLAC: {e}") from None
    if audio.ndim != 1:
        raise AudioDecodeError(f"audio member has {audio.shape[1]} channels; shards are mono")
    return audio, sr


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_span(path: str | Path, start: float, end: float) -> np.ndarray:
    """[start, end) seconds of the audio file `path` as 16 kHz mono float32, reading only that
    span (never the whole recording) and resampling with soxr."""
    import soxr

    with sf.SoundFile(path) as f:
        f.seek(int(round(start * f.samplerate)))
        audio = f.read(int(round((end - start) * f.samplerate)), dtype="float32",
                       always_2d=True)
        rate = f.samplerate
    audio = audio.mean(axis=1)
    return soxr.resample(audio, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else audio
