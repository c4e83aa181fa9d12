"""The TTS voice interface shared by every backend, and the helpers they all need.

Fun-ASR section 5.4 synthesizes code-switched speech "with several TTS voices"; the embedded
default corpus (`synth/corpus.py`) needs English, Mandarin and mixed speech from real engines. Each backend
is one small module that turns text into float32 mono audio at its own native sample rate; callers
that want 16 kHz use `resample_to_16k`.
"""

from __future__ import annotations

import importlib
import os
from typing import Protocol, runtime_checkable

import numpy as np

from funfactory.errors import MissingAssetError

TARGET_SAMPLE_RATE = 16000


@runtime_checkable
class TTSVoice(Protocol):
    """A loaded voice. `synthesize` is deterministic for a given text and seed."""

    name: str
    languages: tuple[str, ...]
    sample_rate: int

    def synthesize(self, text: str, seed: int = 0) -> np.ndarray:
        """Text -> float32 mono waveform in [-1, 1] at `sample_rate`."""
        ...


def require(module: str, pip_package: str):
    """Import `module` or raise MissingAssetError that names the pip package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingAssetError(
            f"TTS needs the Python module {module!r}, which is not installed: "
            f"run `pip install {pip_package}`") from e


def onnx_threads() -> int:
    """onnxruntime intra-op threads for TTS sessions (FUNFACTORY_TTS_THREADS, default 1).

    One thread keeps float reductions in a fixed order, so audio is byte-reproducible.
    """
    return max(1, int(os.environ.get("FUNFACTORY_TTS_THREADS", "1")))


def as_mono_float32(audio: np.ndarray) -> np.ndarray:
    """Flatten an engine's output to a contiguous float32 vector clipped to [-1, 1]."""
    wave = np.asarray(audio, dtype=np.float32).reshape(-1)
    return np.ascontiguousarray(np.clip(wave, -1.0, 1.0))


def resample(audio: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """Resample mono float audio with soxr (HQ); a no-op copy when the rates already match."""
    wave = np.asarray(audio, dtype=np.float32)
    if sample_rate == target_rate:
        return np.ascontiguousarray(wave)
    soxr = require("soxr", "soxr")
    return np.ascontiguousarray(soxr.resample(wave, sample_rate, target_rate, quality="HQ"), dtype=np.float32)


def resample_to_16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono (or frames x channels, downmixed) audio at 16 kHz float32: what every consumer wants."""
    wave = np.asarray(audio, dtype=np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    return resample(wave, sample_rate, TARGET_SAMPLE_RATE)
