"""Speech from espeak-ng 1.52 as shipped by PyPI `espeakng-loader` (its own libespeak-ng and data).

Mandarin (`cmn`) from this build reads Chinese characters with tones and switches to English for
Latin words inside mixed text on its own; Debian's espeak-ng 1.51 reads tone digits as English
numbers, so it is never used. Formant synthesis: robotic but instant, which makes it the voice for
bulk and babble.

espeak-ng keeps synthesis state in static variables (vocoder phase, pitch flutter) that survive
`espeak_Terminate`, so the same text comes out slightly different on every call. Each call
therefore loads a private copy of the library afresh, synthesizes with a fixed random seed, and
unloads it: the same text and seed always give the same samples (about 10 ms per call). The copy
matters: phonemizer (used by the Kokoro backend) keeps the original library loaded for good, so
unloading the original would not reset it.
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from funfactory.errors import FunfactoryError
from funfactory.synth.tts.base import require

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
ESPEAK_RATE = 1
ESPEAK_PITCH = 3

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_LIBRARY_LOCK = threading.Lock()
_private_copies: dict[str, str] = {}


def _private_copy(library_path: str) -> str:
    """A copy of libespeak-ng under a fresh temp folder that only this module ever loads."""
    if library_path not in _private_copies:
        folder = tempfile.mkdtemp(prefix="funfactory-espeak-")
        atexit.register(shutil.rmtree, folder, True)
        _private_copies[library_path] = shutil.copy(library_path, Path(folder) / Path(library_path).name)
    return _private_copies[library_path]


class EspeakVoice:
    """One espeak-ng voice (e.g. `cmn`, `cmn+f3`, `en-us`) at a fixed rate and pitch."""

    def __init__(self, name: str, espeak_voice: str, languages: tuple[str, ...],
                 words_per_minute: int = 165, pitch: int = 50):
        loader = require("espeakng_loader", "espeakng-loader")
        self.name = name
        self.languages = languages
        self.espeak_voice = espeak_voice
        self.words_per_minute = words_per_minute
        self.pitch = pitch
        self.library_path = loader.get_library_path()
        self.data_parent = str(Path(loader.get_data_path()).parent)
        self.sample_rate = self._run("", seed=0)[1]

    def synthesize(self, text: str, seed: int = 0) -> np.ndarray:
        audio, _ = self._run(text, seed)
        return audio

    def _run(self, text: str, seed: int) -> tuple[np.ndarray, int]:
        chunks: list[np.ndarray] = []

        def collect(samples, count, _events):
            if count > 0:
                chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
            return 0

        callback = _SYNTH_CALLBACK(collect)
        with _LIBRARY_LOCK:
            library = ctypes.CDLL(_private_copy(self.library_path))
            try:
                sample_rate = self._synthesize_with(library, callback, text, seed)
            finally:
                _ctypes.dlclose(library._handle)
        if not chunks:
            return np.zeros(0, np.float32), sample_rate
        return (np.concatenate(chunks).astype(np.float32) / 32768.0), sample_rate

    def _synthesize_with(self, library, callback, text: str, seed: int) -> int:
        library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        library.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        library.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                         ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        sample_rate = library.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data_parent.encode(), 0)
        if sample_rate <= 0:
            raise FunfactoryError(f"espeak-ng could not load its data from {self.data_parent}; "
                                  "reinstall it with `pip install --force-reinstall espeakng-loader`")
        try:
            library.espeak_SetSynthCallback(callback)
            if library.espeak_SetVoiceByName(self.espeak_voice.encode()) != 0:
                raise FunfactoryError(f"espeak-ng has no voice {self.espeak_voice!r} in {self.data_parent}")
            library.espeak_SetParameter(ESPEAK_RATE, self.words_per_minute, 0)
            library.espeak_SetParameter(ESPEAK_PITCH, self.pitch, 0)
            library.espeak_ng_SetRandSeed(seed)
            if text.strip():
                encoded = text.encode("utf-8")
                library.espeak_Synth(encoded, len(encoded) + 1, 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
                library.espeak_Synchronize()
        finally:
            library.espeak_Terminate()
        return int(sample_rate)
