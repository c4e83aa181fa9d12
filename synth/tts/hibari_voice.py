"""English speech from hibari-tts (its bundled "heart" voice, 24 kHz, about 50x real time).

hibari's other voices download from the network on first use, which this project never does, so
only the voice that ships inside the wheel is offered.
"""

from __future__ import annotations

import numpy as np

from funfactory.synth.tts.base import as_mono_float32, onnx_threads, require

BUNDLED_VOICE = "heart"


class HibariVoice:
    """hibari-tts with its bundled American English voice."""

    languages = ("en",)

    def __init__(self, name: str = "hibari-en"):
        hibari = require("hibari", "hibari-tts==0.2.1")
        self.name = name
        self.engine = hibari.Hibari(voice=BUNDLED_VOICE, threads=onnx_threads())
        self.sample_rate = int(hibari.SAMPLE_RATE)

    def synthesize(self, text: str, seed: int = 0) -> np.ndarray:
        # hibari adds a noise component to its vocoder; the seed makes it bit-reproducible.
        return as_mono_float32(self.engine(text, seed=seed))
