"""Shared fixtures: real speech made by a real TTS voice, cached for the session."""

from __future__ import annotations

import numpy as np
import pytest

SENTENCES = (
    "The quarterly budget review starts at nine tomorrow.",
    "Please send the deployment notes to the whole team.",
    "Our model reads audio shards from the local disk.",
    "Noise in the stadium made the recording hard to hear.",
    "She booked two tickets for the train to Berlin.",
    "The server restarted twice during the night.",
    "Thank you all for joining the call this morning.",
)


@pytest.fixture(scope="session")
def speech_clips() -> list[tuple[str, np.ndarray]]:
    """(text, 16 kHz float32 audio on the 16-bit grid) for a few English sentences, spoken by
    the packaged hibari voice."""
    from funfactory.synth.tts import get_voice, resample_to_16k

    voice = get_voice("hibari-en")
    clips = []
    for i, text in enumerate(SENTENCES):
        audio = resample_to_16k(voice.synthesize(text, seed=i), voice.sample_rate)
        audio = np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16)
        clips.append((text, audio.astype(np.float32) / 32768.0))
    return clips
