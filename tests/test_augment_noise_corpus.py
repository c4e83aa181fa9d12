"""Noise corpus: test-time noise never reaches training data (section 5.2)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from funfactory.pipelines.augment.augmenter import SampleAugmenter
from funfactory.pipelines.augment.config import AugmentConfig
from funfactory.pipelines.augment.noise_corpus import NoiseCorpus
from tests.augment_helpers import labelled_meta


def test_debian_train_and_test_noise_do_not_overlap():
    corpus = NoiseCorpus.from_sources(["debian"])
    train, test = corpus.select("train"), corpus.select("test")
    assert {c.id for c in train}.isdisjoint({c.id for c in test})
    assert {c.path for c in train}.isdisjoint({c.path for c in test})
    assert len(train) + len(test) == len(corpus.clips)
    by_collection = {}
    for clip in corpus.clips:
        by_collection.setdefault(clip.collection, set()).add(clip.split)
    for collection, splits in by_collection.items():
        members = [c for c in corpus.clips if c.collection == collection]
        assert splits == ({"train", "test"} if len(members) > 1 else {"train"}), collection


def test_split_is_stable_when_a_file_is_added(tmp_path):
    folder = tmp_path / "street"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(9):
        sf.write(folder / f"take{i}.wav", rng.normal(0, 0.1, 8000).astype(np.float32), 16000)
    before = {c.id: c.split for c in NoiseCorpus.from_sources([f"folder:{folder}"]).clips}
    sf.write(folder / "take9.wav", rng.normal(0, 0.1, 8000).astype(np.float32), 16000)
    after = {c.id: c.split for c in NoiseCorpus.from_sources([f"folder:{folder}"]).clips}
    changed = [cid for cid in before if before[cid] != after[cid]]
    assert len(changed) <= 1  # at most the one clip displaced by the test quota moving up
    assert "test" in before.values() and "train" in before.values()


def test_augmenter_for_training_uses_train_noise_only(speech_clips):
    corpus = NoiseCorpus.from_sources(["debian"])
    config = AugmentConfig(seed=5)
    config.noise_only.share = 0.0
    augmenter = SampleAugmenter(config, corpus.select("train"))
    text, audio = speech_clips[1]
    short = audio[8000:12000]
    used = {augmenter.noisy(labelled_meta(text, short, i), short).meta["augment"]["noise_id"]
            for i in range(300)}
    test_ids = {c.id for c in corpus.select("test")}
    assert used and used.isdisjoint(test_ids)
    assert len(used) > 5


def test_manifest_keeps_the_split_it_carries(tmp_path):
    """The embedded corpus's format: `uri` relative to the corpus root, `category`."""
    src = "/usr/share/games/etw/crowd/crowd01.wav"
    (tmp_path / "noise").mkdir()
    shutil.copy(src, tmp_path / "noise" / "a.wav")
    shutil.copy(src, tmp_path / "noise" / "b.wav")
    (tmp_path / "noise" / "manifest.jsonl").write_text(
        json.dumps({"id": "kitchen-a", "uri": "noise/a.wav", "split": "test",
                    "category": "kitchen"}) + "\n"
        + json.dumps({"id": "kitchen-b", "uri": "noise/b.wav", "split": "train",
                      "category": "kitchen"}) + "\n")
    corpus = NoiseCorpus.from_sources([f"manifest:{tmp_path / 'noise' / 'manifest.jsonl'}"])
    clips = {c.id: c for c in corpus.clips}
    assert clips["kitchen-a"].split == "test" and clips["kitchen-b"].split == "train"
    assert clips["kitchen-a"].collection == "kitchen" and clips["kitchen-a"].audio.size > 16000


@pytest.mark.slow
def test_debian_split_is_the_embedded_corpus_split(tmp_path):
    from funfactory.synth.noise import build_real_noise

    corpus_split = {r["original_path"]: r["split"] for r in build_real_noise(tmp_path)}
    ours = {c.path: c.split for c in NoiseCorpus.from_sources(["debian"]).clips}
    assert ours == corpus_split


def test_noise_is_decoded_once_per_machine_and_again_when_the_file_changes(tmp_path, monkeypatch):
    from funfactory.pipelines.augment.noise_corpus import cached_audio_16k, load_audio_16k
    monkeypatch.setenv("FUNFACTORY_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(3)
    path = tmp_path / "hum.wav"
    sf.write(path, 0.1 * rng.standard_normal(22050), 22050)
    first = cached_audio_16k(path)
    assert np.array_equal(first, load_audio_16k(path)) and first.dtype == np.float32
    again = cached_audio_16k(path)
    assert isinstance(again, np.memmap) and np.array_equal(again, first)
    assert len(list((tmp_path / "cache" / "noise-16k").glob("*.npy"))) == 1
    sf.write(path, 0.1 * rng.standard_normal(44100), 22050)  # edited: longer
    assert len(cached_audio_16k(path)) == 32000
