"""Real TTS speech and the distortions a copied recording goes through (for eval tests)."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import soundfile as sf
import soxr

SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please send the quarterly report to the finance team by Friday.",
    "Our meeting about the new database migration starts after lunch.",
    "She bought fresh vegetables and bread at the market this morning.",
    "The train to the airport leaves every few minutes from the north platform.",
    "Remember to water the plants while I am away on holiday next week.",
    "Engineers deployed the service to production after the tests passed.",
    "The museum opens early and closes late on public holidays.",
)


@lru_cache(maxsize=1)
def speech() -> tuple[np.ndarray, ...]:
    """One 16 kHz float32 clip per sentence, spoken by hibari's bundled voice."""
    import hibari

    voice = hibari.Hibari(voice="heart", threads=1)
    return tuple(soxr.resample(voice(text, seed=i), hibari.SAMPLE_RATE, 16000).astype(np.float32)
                 for i, text in enumerate(SENTENCES))


def mp3_roundtrip(audio: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    buffer = io.BytesIO()
    sf.write(buffer, audio, sample_rate, format="MP3")
    buffer.seek(0)
    decoded, rate = sf.read(buffer, dtype="float32")
    assert rate == sample_rate
    return decoded


def resampled(audio: np.ndarray, rate: int = 22050) -> np.ndarray:
    return soxr.resample(audio, 16000, rate).astype(np.float32)


def trimmed(audio: np.ndarray, seconds: float = 0.5) -> np.ndarray:
    return audio[int(seconds * 16000):]
