"""Noise-only hallucination negatives (Fun-ASR section 5.6).

Zero padding is inserted before the utterance and the padded signal is mixed with noise at the
drawn SNR (the SNR refers to the utterance's speech, so the noise sits at the level it would have
next to that speaker); the padded stretch, now noise and nothing else, becomes a sample whose label
is empty. The model learns to write nothing when it hears no speech. Babble is speech, so it is
never used here, and a voice-activity check (silero-vad) can turn away a stretch of noise that
sounds like speech (shouting crowds), drawing another one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from funfactory.pipelines.augment.mixing import Mix, mix_at_snr, noise_segment

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class NoiseOnly:
    audio: np.ndarray
    mix: Mix
    padding_samples: int


def noise_only_from_padding(speech: np.ndarray, noise: np.ndarray, offset: int, snr_db: float,
                            padding_seconds: float) -> NoiseOnly:
    """Pad `speech` with `padding_seconds` of zeros in front, mix the padded signal with `noise`
    (looped, from `offset`) at `snr_db` relative to the speech, and keep the padded stretch."""
    padding = max(1, int(round(padding_seconds * SAMPLE_RATE)))
    speech = np.asarray(speech, np.float32)
    padded = np.concatenate([np.zeros(padding, np.float32), speech])
    segment = noise_segment(noise, padded.size, offset)
    speech_rms = float(np.sqrt(np.mean(speech.astype(np.float64) ** 2)))
    mix = mix_at_snr(padded, segment, snr_db, reference_rms=speech_rms)
    return NoiseOnly(mix.audio[:padding], mix, padding)


class SpeechDetector:
    """silero-vad (ONNX, shipped in the wheel): does a clip contain speech?"""

    def __init__(self, threshold: float = 0.5, min_speech_ms: int = 250):
        from silero_vad import load_silero_vad

        self.model = load_silero_vad(onnx=True)
        self.threshold = threshold
        self.min_speech_ms = min_speech_ms

    def speech_seconds(self, audio: np.ndarray) -> float:
        import torch
        from silero_vad import get_speech_timestamps

        self.model.reset_states()
        stamps = get_speech_timestamps(torch.from_numpy(np.asarray(audio, np.float32)), self.model,
                                       threshold=self.threshold, sampling_rate=SAMPLE_RATE,
                                       min_speech_duration_ms=self.min_speech_ms)
        return sum(s["end"] - s["start"] for s in stamps) / SAMPLE_RATE

    def has_speech(self, audio: np.ndarray) -> bool:
        return self.speech_seconds(audio) > 0
