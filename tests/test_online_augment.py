"""Online noise for the training loader: the offline mixing rule, train noise only, the
configured share of samples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from funfactory.errors import FunfactoryError
from funfactory.pipelines.augment.mixing import measured_snr_db, mix_at_snr, noise_segment
from funfactory.pipelines.augment.noise_corpus import NoiseCorpus
from funfactory.training.online_augment import OnlineNoiseAugmenter
from tests.augment_helpers import write_labelled_shards


@pytest.fixture(scope="module")
def corpus():
    return NoiseCorpus.from_sources(["debian:ambient+traffic"])


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, corpus):
    path = tmp_path_factory.mktemp("noise") / "noise.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in corpus.manifest_rows()))
    return path


@pytest.fixture(scope="module")
def augmenter(manifest):
    return OnlineNoiseAugmenter.from_options({"noise_manifest": str(manifest)})


def test_only_train_noise_is_loaded(augmenter, corpus):
    train = {c.id for c in corpus.select("train")}
    test = {c.id for c in corpus.select("test")}
    assert set(augmenter.bank.ids) == train and train.isdisjoint(test)


def test_online_mix_is_the_offline_mix_and_keeps_its_snr(augmenter, corpus, speech_clips):
    clips = {c.id: c for c in corpus.clips}
    rng = np.random.default_rng(4)
    for text, audio in speech_clips[:4]:
        noisy, meta = augmenter(audio, {"text": text, "augment": None}, rng)
        record = meta["augment"]
        assert record["kind"] == "online_noise" and meta["text"] == text
        offline = mix_at_snr(audio, noise_segment(clips[record["noise_id"]].audio, audio.size,
                                                  record["noise_offset_samples"]),
                             record["snr_db"])
        np.testing.assert_allclose(noisy, offline.audio, atol=2e-5)
        measured = measured_snr_db(audio, noisy, record["output_gain"])
        assert abs(measured - record["snr_db"]) < 0.5


def test_snr_follows_the_configured_distribution(manifest, speech_clips):
    augmenter = OnlineNoiseAugmenter.from_options({"noise_manifest": str(manifest),
                                                   "snr_mean_db": "5", "snr_std_db": "3"})
    audio = speech_clips[0][1][8000:12000]
    rng = np.random.default_rng(0)
    snrs = [augmenter(audio, {}, rng)[1]["augment"]["snr_db"] for _ in range(2000)]
    assert abs(np.mean(snrs) - 5.0) < 0.25 and abs(np.std(snrs) - 3.0) < 0.25


def test_maybe_augment_mixes_the_configured_share(augmenter, speech_clips):
    audio = speech_clips[0][1][8000:9600]
    rng = np.random.default_rng(1)
    mixed = sum(augmenter.maybe_augment(audio, {}, rng)[1].get("augment") is not None
                for _ in range(3000))
    assert abs(mixed / 3000 - 0.3) < 0.03


def test_silent_clips_are_left_alone(augmenter):
    silence = np.zeros(16000, np.float32)
    out, meta = augmenter(silence, {"task": "noise_only"}, np.random.default_rng(0))
    assert out is silence and "augment" not in meta


def test_bad_options_name_the_fix(manifest):
    with pytest.raises(FunfactoryError, match="noise-split"):
        OnlineNoiseAugmenter.from_options({})
    with pytest.raises(FunfactoryError, match="unknown"):
        OnlineNoiseAugmenter.from_options({"noise_manifest": str(manifest), "snr": "3"})


@pytest.mark.slow
def test_training_loader_mixes_noise_into_its_share_of_samples(tmp_path, augmenter,
                                                               speech_clips):
    from funfactory.training.config import LoaderConfig, StreamConfig
    from funfactory.training.loader import StreamingLoader

    shards = write_labelled_shards(tmp_path / "speech", speech_clips, copies=6, max_count=10)
    config = LoaderConfig(streams=[StreamConfig(shards=[str(shards)])], batch_size=6,
                          shuffle_buffer=0)
    config.augment.enabled, config.augment.fraction = True, 0.3
    loader = StreamingLoader(config, augmenter=augmenter)
    flags = [flag for batch in loader for flag in batch["augmented"]]
    assert len(flags) == 6 * len(speech_clips)
    assert 0.1 < np.mean(flags) < 0.5
