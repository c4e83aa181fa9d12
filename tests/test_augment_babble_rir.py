"""Babble noise from several TTS voices, and convolution with a measured impulse response."""

from __future__ import annotations

import numpy as np
import pytest

from funfactory.pipelines.augment.babble import babble_texts, babble_voices, write_babble_folder
from funfactory.pipelines.augment.noise_corpus import NoiseCorpus
from funfactory.pipelines.augment.noise_only import SpeechDetector
from funfactory.pipelines.augment.rir import apply_rir, load_impulse_responses


def test_babble_is_several_voices_and_counts_as_speech(tmp_path):
    voices = babble_voices(("espeak-en", "espeak-cmn", "espeak-cmn-f"))
    clips = write_babble_folder(tmp_path / "babble", voices, babble_texts(), n_clips=2,
                                n_talkers=3, seconds=4.0, seed=1)
    assert [c.collection for c in clips] == ["babble", "babble"]
    assert all(c.speech_like for c in clips)
    first, second = clips[0].audio, clips[1].audio
    assert first.size == second.size == 64000 and not np.array_equal(first, second)
    assert SpeechDetector().speech_seconds(first) > 1.0
    again = write_babble_folder(tmp_path / "again", voices, babble_texts(), n_clips=2,
                                n_talkers=3, seconds=4.0, seed=1)
    assert np.array_equal(again[0].audio, first), "same seed, same babble"
    corpus = NoiseCorpus.from_sources([f"folder:{tmp_path / 'babble'}=babble", "debian:traffic"])
    quiet = corpus.select("train", allow_speech_like=False)
    assert quiet and all(c.collection == "traffic" for c in quiet)


def test_measured_street_response_reverberates_without_shifting_or_changing_level(speech_clips):
    (response, *_) = load_impulse_responses()
    assert response.id.startswith("rir-street2")
    _, dry = speech_clips[0]
    wet = apply_rir(dry, response)
    assert wet.shape == dry.shape
    assert np.sqrt(np.mean(wet ** 2)) == pytest.approx(np.sqrt(np.mean(dry ** 2)), rel=0.01)
    click = np.zeros(32000, np.float32)
    click[8000] = 0.5
    echo = apply_rir(click, response)
    assert np.argmax(np.abs(echo)) == 8000, "the direct path stays where the sound was"
    assert np.sum(echo[8001:] ** 2) > 0.1 * np.sum(echo ** 2), "and reflections follow it"
    assert np.max(np.abs(echo[:8000])) < 1e-6, "nothing is heard before the sound"
    assert np.corrcoef(wet, dry)[0, 1] < 0.99, "the response must audibly change the signal"
