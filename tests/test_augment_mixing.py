"""SNR mixing (section 5.2): the SNR a sample records is the SNR it has, and the drawn SNRs follow
the configured distribution."""

from __future__ import annotations

import numpy as np
import pytest

from funfactory.errors import FunfactoryError
from funfactory.pipelines.augment.augmenter import SampleAugmenter
from funfactory.pipelines.augment.config import AugmentConfig
from funfactory.pipelines.augment.mixing import (SnrDistribution, measured_snr_db, mix_at_snr,
                                                 noise_segment, sample_rng)
from funfactory.pipelines.augment.noise_corpus import NoiseCorpus
from funfactory.shards.reader import ShardReader
from funfactory.shards.writer import ShardWriter
from tests.augment_helpers import labelled_meta


@pytest.fixture(scope="module")
def train_clips():
    clips = NoiseCorpus.from_sources(["debian"]).select("train")
    for clip in clips:
        clip.audio
    return clips


@pytest.mark.parametrize("mean_db", [-5.0, 10.0, 30.0])
def test_measured_snr_of_written_samples_matches_recorded(tmp_path, speech_clips, train_clips,
                                                          mean_db):
    config = AugmentConfig(seed=3)
    config.snr.mean_db, config.snr.std_db = mean_db, 0.0 if mean_db != 10.0 else 5.0
    config.noise_only.share = 0.0
    augmenter = SampleAugmenter(config, train_clips)
    clean = {}
    with ShardWriter(tmp_path, "mixed", "train") as writer:
        for i, (text, audio) in enumerate(speech_clips):
            if mean_db == -5.0:  # loud speech and louder noise: the sum must be scaled down
                audio = np.round(audio / np.abs(audio).max() * 0.95 * 32767) / 32768
            meta = labelled_meta(text, audio, i)
            derived, _ = augmenter.derive(meta, audio)
            (noisy,) = derived
            clean[noisy.meta["key"]] = audio
            writer.write(noisy.meta, noisy.audio)
    samples = list(ShardReader(tmp_path))
    assert len(samples) == len(speech_clips)
    for sample in samples:
        aug = sample.meta["augment"]
        measured = measured_snr_db(clean[sample.key], sample.audio, aug["output_gain"])
        assert abs(measured - aug["snr_db"]) < 0.5, (sample.key, measured, aug)
        if mean_db != 10.0:
            assert aug["snr_db"] == mean_db
    if mean_db == -5.0:  # the mixture was scaled down to avoid clipping; the SNR still holds
        assert any(s.meta["augment"]["output_gain"] < 1.0 for s in samples)


@pytest.mark.parametrize("mean_db,std_db", [(10.0, 5.0), (4.0, 2.0)])
def test_drawn_snr_has_configured_mean_and_spread(mean_db, std_db):
    dist = SnrDistribution(mean_db, std_db, -5.0, 30.0)
    draws = np.array([dist.draw(sample_rng(7, f"utt{i}", "noisy")) for i in range(4000)])
    assert abs(draws.mean() - mean_db) < 0.25
    assert abs(draws.std() - std_db) < 0.25
    assert draws.min() >= -5.0 and draws.max() <= 30.0


def test_snr_recorded_by_augmenter_follows_distribution(speech_clips, train_clips):
    text, audio = speech_clips[0]
    short = audio[:8000]
    augmenter = SampleAugmenter(AugmentConfig(seed=11), train_clips)
    augmenter.config.noise_only.share = 0.0
    snrs = [augmenter.noisy(labelled_meta(text, short, i), short).meta["augment"]["snr_db"]
            for i in range(600)]
    assert abs(np.mean(snrs) - 10.0) < 0.6
    assert abs(np.std(snrs) - 5.0) < 0.6


def test_draws_depend_on_seed_and_key_only():
    a = sample_rng(1, "k1", "noisy").normal()
    assert a == sample_rng(1, "k1", "noisy").normal()
    assert a != sample_rng(2, "k1", "noisy").normal()
    assert a != sample_rng(1, "k2", "noisy").normal()


def test_noise_shorter_than_speech_is_looped():
    noise = np.arange(5, dtype=np.float32)
    assert noise_segment(noise, 12, 3).tolist() == [3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4]


def test_silent_speech_has_no_snr():
    with pytest.raises(FunfactoryError, match="silent"):
        mix_at_snr(np.zeros(1600, np.float32), np.ones(1600, np.float32), 10.0)
