"""Mixing speech with noise at a drawn SNR (Fun-ASR section 5.2).

The SNR is drawn per sample from N(mean, std) clipped to [min, max] (default N(10, 5) dB in
[-5, 30]). The noise gain follows audiomentations' `AddBackgroundNoise` in relative mode
(`calculate_rms`, `calculate_desired_noise_rms`): noise RMS = speech RMS / 10^(SNR/20), both RMS
over the whole clip; noise shorter than the speech is looped, as AddBackgroundNoise does. We call
those functions with the SNR we drew, rather than letting the transform draw it, so that the
realised SNR, noise clip and offset are exactly what the sample records. When the mixture would
clip, speech and noise are scaled down together, which leaves the SNR unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from audiomentations.core.utils import calculate_desired_noise_rms, calculate_rms

from funfactory.errors import FunfactoryError

PEAK_LIMIT = 0.99
MIN_SPEECH_RMS = 1e-5


@dataclass(frozen=True)
class SnrDistribution:
    """SNR in dB ~ N(mean_db, std_db), clipped to [min_db, max_db]."""

    mean_db: float = 10.0
    std_db: float = 5.0
    min_db: float = -5.0
    max_db: float = 30.0

    def __post_init__(self):
        if self.std_db < 0 or self.min_db > self.max_db:
            raise FunfactoryError(f"SNR distribution N({self.mean_db}, {self.std_db}) in "
                                  f"[{self.min_db}, {self.max_db}] is not valid: std must be >= 0 "
                                  "and min <= max")

    def draw(self, rng: np.random.Generator) -> float:
        return float(np.clip(rng.normal(self.mean_db, self.std_db), self.min_db, self.max_db))


def sample_rng(seed: int, key: str, purpose: str = "") -> np.random.Generator:
    """A generator that depends only on (seed, key, purpose): the same sample gets the same draws
    whatever order or worker it is processed in."""
    digest = hashlib.sha256(f"{key}\0{purpose}".encode("utf-8")).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8], "little")])


def noise_segment(noise: np.ndarray, length: int, offset: int) -> np.ndarray:
    """`length` samples of `noise` from `offset`, looping around its end where needed."""
    if noise.size == 0:
        raise FunfactoryError("noise clip is empty")
    offset %= noise.size
    if offset + length <= noise.size:
        return noise[offset:offset + length]
    reps = int(np.ceil((offset + length) / noise.size))
    return np.tile(noise, reps)[offset:offset + length]


@dataclass(frozen=True)
class Mix:
    audio: np.ndarray
    snr_db: float
    noise_gain: float
    output_gain: float


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float,
               reference_rms: float | None = None) -> Mix:
    """speech + gain * noise with RMS(speech) / RMS(gain * noise) = 10^(snr_db / 20).

    `reference_rms` replaces the speech RMS (noise-only samples: the RMS of the utterance whose
    zero padding they come from). `speech` and `noise` have the same length.
    """
    if speech.shape != noise.shape:
        raise FunfactoryError(f"speech ({speech.shape}) and noise ({noise.shape}) lengths differ")
    speech = np.asarray(speech, np.float32)
    noise = np.asarray(noise, np.float32)
    clean_rms = float(calculate_rms(speech)) if reference_rms is None else float(reference_rms)
    if clean_rms < MIN_SPEECH_RMS:
        raise FunfactoryError(f"speech RMS {clean_rms:.2e} is too low to set an SNR: the clip is "
                              "silent")
    noise_rms = float(calculate_rms(noise))
    if noise_rms <= 0:
        raise FunfactoryError("noise segment is silent; choose another clip or offset")
    noise_gain = calculate_desired_noise_rms(clean_rms, snr_db) / noise_rms
    mixed = speech.astype(np.float64) + noise_gain * noise.astype(np.float64)
    peak = float(np.max(np.abs(mixed)))
    output_gain = PEAK_LIMIT / peak if peak > PEAK_LIMIT else 1.0
    return Mix((mixed * output_gain).astype(np.float32), float(snr_db), float(noise_gain),
               float(output_gain))


def measured_snr_db(clean: np.ndarray, mixed: np.ndarray, output_gain: float = 1.0) -> float:
    """SNR of `mixed` against `clean` (scaled by the mix's output gain), from the residual."""
    reference = np.asarray(clean, np.float64) * output_gain
    residual = np.asarray(mixed, np.float64) - reference
    return float(10 * np.log10(np.sum(reference ** 2) / np.sum(residual ** 2)))
