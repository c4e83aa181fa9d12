"""TTS backends behind one interface (Fun-ASR section 5.4 synthesizes speech in
several voices). Real engines only: hibari-tts, piper-tts (joe), Kokoro-82M and espeak-ng.

    from funfactory.synth.tts import get_voice, list_voices, resample_to_16k
    voice = get_voice("kokoro-alpha")
    audio = resample_to_16k(voice.synthesize("我们用 Kubernetes 部署。"), voice.sample_rate)
"""

from funfactory.synth.tts.base import TARGET_SAMPLE_RATE, TTSVoice, resample, resample_to_16k
from funfactory.synth.tts.registry import VOICES, VoiceSpec, get_voice, list_voices

__all__ = ["TARGET_SAMPLE_RATE", "TTSVoice", "VOICES", "VoiceSpec", "get_voice", "list_voices", "resample",
           "resample_to_16k"]
