"""Noise-only hallucination negatives (section 5.6): noise, no speech, empty label."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from silero_vad import get_speech_timestamps, load_silero_vad

from funfactory.errors import FunfactoryError
from funfactory.pipelines.augment.augmenter import SampleAugmenter
from funfactory.pipelines.augment.config import AugmentConfig
from funfactory.pipelines.augment.noise_corpus import NoiseClip, NoiseCorpus
from funfactory.pipelines.augment.noise_only import SpeechDetector, noise_only_from_padding
from funfactory.shards.reader import ShardReader
from funfactory.shards.writer import ShardWriter
from tests.augment_helpers import labelled_meta


@pytest.fixture(scope="module")
def vad():
    torch.set_num_threads(1)
    return load_silero_vad(onnx=True)


def speech_in(vad, audio: np.ndarray) -> list[dict]:
    vad.reset_states()
    return get_speech_timestamps(torch.from_numpy(np.asarray(audio, np.float32)), vad,
                                 sampling_rate=16000)


def noise_only_config(seed: int = 0) -> AugmentConfig:
    config = AugmentConfig(seed=seed, noisy_share=0.0)
    config.noise_only.share = 1.0
    return config


def test_noise_only_samples_have_no_speech_and_an_empty_label(tmp_path, speech_clips, vad):
    clips = NoiseCorpus.from_sources(["debian"]).select("train")
    augmenter = SampleAugmenter(noise_only_config(), clips, detector=SpeechDetector())
    with ShardWriter(tmp_path, "negatives", "train") as writer:
        for i, (text, audio) in enumerate(speech_clips):
            assert speech_in(vad, audio), "the VAD must hear the TTS speech itself"
            derived, rejected = augmenter.derive(labelled_meta(text, audio, i), audio)
            assert not rejected
            for item in derived:
                writer.write(item.meta, item.audio)
    samples = list(ShardReader(tmp_path))
    assert len(samples) == len(speech_clips)
    for sample in samples:
        meta = sample.meta
        assert meta["task"] == "noise_only" and meta["text"] == "" and meta["raw_text"] == ""
        assert speech_in(vad, sample.audio) == [], meta["augment"]
        padding = meta["augment"]["padding"]["before_seconds"]
        assert 1.0 <= padding <= 4.0
        assert abs(meta["duration"] - padding) < 1e-3
        assert np.sqrt(np.mean(sample.audio ** 2)) > 1e-4, "noise, not digital silence"


def test_noise_only_level_is_set_by_the_utterance(speech_clips):
    _, audio = speech_clips[2]
    noise = NoiseCorpus.from_sources(["debian:ambient"]).select("train")[0].audio
    made = noise_only_from_padding(audio, noise, 1234, 6.0, 1.5)
    speech_rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
    noise_rms = np.sqrt(np.mean((made.mix.audio.astype(np.float64)[:made.padding_samples + audio.size]
                                 / made.mix.output_gain - np.concatenate(
                                     [np.zeros(made.padding_samples), audio])) ** 2))
    assert abs(20 * np.log10(speech_rms / noise_rms) - 6.0) < 0.01
    assert made.audio.size == 24000


def test_vad_check_turns_away_noise_that_is_speech(tmp_path, speech_clips):
    path = tmp_path / "talk.wav"
    sf.write(path, np.concatenate([a for _, a in speech_clips]), 16000)
    speechy = [NoiseClip("radio-talk", "radio", str(path))]
    config = noise_only_config()
    config.noise_only.min_seconds = config.noise_only.max_seconds = 3.0
    augmenter = SampleAugmenter(config, speechy, detector=SpeechDetector())
    text, audio = speech_clips[0]
    derived, rejected = augmenter.derive(labelled_meta(text, audio, 0), audio)
    assert derived == []
    assert [r.reason for r in rejected] == ["vad_speech_in_noise"]


def test_babble_is_never_used_for_noise_only(tmp_path):
    babble = [NoiseClip("babble-b0", "babble", str(tmp_path / "b0.flac"))]
    with pytest.raises(FunfactoryError, match="not babble"):
        SampleAugmenter(noise_only_config(), babble)
