"""Voice registry: names -> lazily constructed, cached voices.

    from funfactory.synth.tts import get_voice, list_voices
    voice = get_voice("kokoro-alpha")
    audio = voice.synthesize("我们明天下午三点半讨论 Kubernetes 的部署。")   # float32 at voice.sample_rate
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from funfactory.errors import FunfactoryError
from funfactory.synth.tts.base import TTSVoice


@dataclass(frozen=True)
class VoiceSpec:
    """What a voice is, known without loading it."""

    name: str
    engine: str
    languages: tuple[str, ...]
    sample_rate: int
    build: Callable[[], TTSVoice]


def _hibari() -> TTSVoice:
    from funfactory.synth.tts.hibari_voice import HibariVoice
    return HibariVoice("hibari-en")


def _piper() -> TTSVoice:
    from funfactory.synth.tts.piper_voice import PiperJoeVoice
    return PiperJoeVoice("piper-joe-en")


def _kokoro(style_key: str) -> Callable[[], TTSVoice]:
    def build() -> TTSVoice:
        from funfactory.synth.tts.kokoro_voice import STYLES, KokoroVoice
        return KokoroVoice(f"kokoro-{style_key}", STYLES[style_key])
    return build


def _espeak(name: str, espeak_voice: str, languages: tuple[str, ...], **kwargs) -> Callable[[], TTSVoice]:
    def build() -> TTSVoice:
        from funfactory.synth.tts.espeak_voice import EspeakVoice
        return EspeakVoice(name, espeak_voice, languages, **kwargs)
    return build


_KOKORO_LANGUAGES = ("zh", "zh-en", "en")
_SPECS = [
    VoiceSpec("hibari-en", "hibari-tts", ("en",), 24000, _hibari),
    VoiceSpec("piper-joe-en", "piper-tts", ("en",), 22050, _piper),
    *[VoiceSpec(f"kokoro-{key}", "kokoro", _KOKORO_LANGUAGES, 24000, _kokoro(key))
      for key in ("alpha", "gongitsune", "nezumi", "tebukuro", "kumo")],
    VoiceSpec("espeak-cmn", "espeak-ng", ("zh", "zh-en"), 22050,
              _espeak("espeak-cmn", "cmn", ("zh", "zh-en"))),
    VoiceSpec("espeak-cmn-f", "espeak-ng", ("zh", "zh-en"), 22050,
              _espeak("espeak-cmn-f", "cmn+f3", ("zh", "zh-en"), words_per_minute=155, pitch=62)),
    VoiceSpec("espeak-en", "espeak-ng", ("en",), 22050,
              _espeak("espeak-en", "en-us", ("en",), words_per_minute=160)),
]
VOICES: dict[str, VoiceSpec] = {spec.name: spec for spec in _SPECS}
_loaded: dict[str, TTSVoice] = {}
_lock = threading.Lock()


def list_voices(language: str | None = None) -> list[VoiceSpec]:
    """Every registered voice, or those that speak `language` ("en", "zh", "zh-en")."""
    return [spec for spec in _SPECS if language is None or language in spec.languages]


def get_voice(name: str) -> TTSVoice:
    """The voice called `name`, loaded once per process."""
    if name not in VOICES:
        raise FunfactoryError(f"unknown TTS voice {name!r}; available voices: {', '.join(VOICES)}")
    with _lock:
        if name not in _loaded:
            _loaded[name] = VOICES[name].build()
        return _loaded[name]
