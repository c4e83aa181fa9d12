"""Babble noise: several TTS voices talking over each other (Fun-ASR section 5.2's noise includes
babble; no babble corpus is packaged, so it is made from the synth area's voices).

The fast voices (espeak-ng English and Mandarin, hibari) speak a fixed pool of sentences in
English and Chinese; each clip overlays `n_talkers` of them at equal RMS and random offsets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from funfactory.errors import FunfactoryError
from funfactory.pipelines.augment.noise_corpus import (SAMPLE_RATE, NoiseClip, assign_splits,
                                                       folder_clips)

BABBLE_VOICES = ("espeak-en", "espeak-cmn", "espeak-cmn-f", "hibari-en")
BABBLE_TEXTS = (
    "I told them the meeting would run late again tonight.",
    "We should order lunch before the kitchen closes at two.",
    "Did anyone see where I left the blue folder yesterday?",
    "The weather turned cold so we stayed inside and talked.",
    "今天下午我们去超市买点水果和牛奶吧。",
    "他说明天的会议改到上午十点半开始。",
    "这家餐厅的菜很好吃，就是人太多了。",
    "我刚才在地铁上遇到了一个老同学。",
)


def babble_voices(names: tuple[str, ...] = BABBLE_VOICES) -> list:
    from funfactory.synth.tts import get_voice

    return [get_voice(name) for name in names]


def babble_texts() -> list[str]:
    return list(BABBLE_TEXTS)


def make_babble(voices, texts: list[str], n_talkers: int = 4, seconds: float = 8.0,
                seed: int = 0) -> np.ndarray:
    """Babble: `n_talkers` TTS utterances (voices and texts taken in turn) overlaid at equal RMS,
    each looped to `seconds` and started at a random offset; returns 16 kHz float32 at peak 0.5."""
    from funfactory.synth.tts import resample_to_16k

    if not voices or not texts:
        raise FunfactoryError("babble needs at least one TTS voice and one text")
    rng = np.random.default_rng(seed)
    length = int(seconds * SAMPLE_RATE)
    babble = np.zeros(length, np.float64)
    for talker in range(n_talkers):
        voice = voices[talker % len(voices)]
        text = texts[(seed + talker) % len(texts)]
        speech = np.asarray(resample_to_16k(voice.synthesize(text, seed=seed + talker),
                                            voice.sample_rate), np.float64)
        if not speech.size:
            continue
        speech /= max(np.sqrt(np.mean(speech ** 2)), 1e-9)
        reps = int(np.ceil((length + speech.size) / speech.size))
        start = int(rng.integers(0, speech.size))
        babble += np.tile(speech, reps)[start:start + length]
    peak = np.max(np.abs(babble))
    if peak == 0:
        raise FunfactoryError("babble came out silent: the TTS voices produced no audio")
    return (0.5 * babble / peak).astype(np.float32)


def write_babble_folder(folder: str | Path, voices, texts: list[str], n_clips: int = 6,
                        n_talkers: int = 4, seconds: float = 8.0, seed: int = 0) -> list[NoiseClip]:
    """Write `n_clips` babble clips as FLAC into `folder`; returns them as the `babble` collection,
    split train/test like every other collection."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_clips):
        path = root / f"babble{i:03d}.flac"
        if not path.exists():
            audio = make_babble(voices, texts, n_talkers, seconds, seed=seed * 1000 + i)
            sf.write(str(path), audio, SAMPLE_RATE, subtype="PCM_16")
    clips = folder_clips(root, "babble")
    assign_splits(clips)
    return clips
