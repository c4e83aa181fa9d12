"""The streaming loader: exactly-once splitting, bucketing caps, mixing weights, exact resume."""

from __future__ import annotations

import collections

import pytest
import torch

from funfactory.errors import FunfactoryError
from funfactory.training.config import LoaderConfig, StreamConfig
from funfactory.training.loader import StreamingLoader
from tests.conftest_training import varied_clips, write_speech_shards


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, speech_clips):
    """48 samples in 8 shards (shard-level split) and 20 samples in 3 shards (index split)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("loader")
    clips = varied_clips(speech_clips)
    many = write_speech_shards(root / "many", clips, 48, per_shard=6, dataset="many",
                               languages=("en", "zh"))
    few = write_speech_shards(root / "few", clips, 20, per_shard=7, dataset="few")
    return {"many": (str(root / "many"), many), "few": (str(root / "few"), few)}


def _config(shards: str, **kw) -> LoaderConfig:
    defaults = dict(streams=[StreamConfig(name="main", shards=[shards])], shuffle_buffer=8,
                    max_batch_seconds=12.0, max_batch_size=8, bucket_boundaries=[2.0, 3.0],
                    seed=3)
    defaults.update(kw)
    return LoaderConfig(**defaults)


def _epoch_keys(config: LoaderConfig, world: int) -> list[list[str]]:
    per_rank = []
    for rank in range(world):
        loader = StreamingLoader(config, rank=rank, world_size=world)
        per_rank.append([k for batch in loader for k in batch["keys"]])
    return per_rank


@pytest.mark.parametrize("which", ["many", "few"])
def test_every_sample_exactly_once_across_2_workers_x_2_ranks(corpus, which):
    shards, keys = corpus[which]
    per_rank = _epoch_keys(_config(shards, num_workers=2), world=2)
    seen = [k for rank in per_rank for k in rank]
    counts = collections.Counter(seen)
    assert sorted(counts) == sorted(keys)
    assert max(counts.values()) == 1
    assert all(per_rank), "each rank gets part of the data"


def test_epochs_reshuffle_and_cover_everything(corpus):
    shards, keys = corpus["many"]
    loader = StreamingLoader(_config(shards))
    first = [k for b in loader for k in b["keys"]]
    second = [k for b in loader for k in b["keys"]]
    assert sorted(first) == sorted(second) == sorted(keys)
    assert first != second
    assert loader.epoch == 2


def test_batches_respect_the_audio_cap_and_buckets(corpus):
    shards, _ = corpus["many"]
    config = _config(shards)
    for batch in StreamingLoader(config):
        durations = (batch["lengths"].float() / 16000).tolist()
        assert len(durations) <= config.max_batch_size
        if len(durations) > 1:
            assert len(durations) * max(durations) <= config.max_batch_seconds + 1e-6
        buckets = {sum(d > b for b in config.bucket_boundaries) for d in durations}
        assert len(buckets) == 1, f"one batch mixes duration buckets: {durations}"
        assert batch["waveforms"].shape == (len(durations), int(batch["lengths"].max()))


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_continues_with_the_exact_next_batches(corpus, workers):
    shards, _ = corpus["many"]
    config = _config(shards, num_workers=workers)
    loader = StreamingLoader(config, rank=1, world_size=2)
    it = iter(loader)
    for _ in range(3):
        next(it)
    state = loader.state_dict()
    rest = [batch["keys"] for batch in it]
    assert rest, "the checkpoint must be taken mid-epoch"

    resumed = StreamingLoader(config, rank=1, world_size=2)
    resumed.load_state_dict(state)
    again = [batch["keys"] for batch in resumed]
    assert again == rest
    assert resumed.epoch == loader.epoch == 1


def test_resume_refuses_a_different_world(corpus):
    shards, _ = corpus["few"]
    loader = StreamingLoader(_config(shards), rank=0, world_size=2)
    next(iter(loader))
    other = StreamingLoader(_config(shards), rank=0, world_size=1)
    with pytest.raises(FunfactoryError, match="world_size"):
        other.load_state_dict(loader.state_dict())


def test_language_weights_up_and_down_sample(corpus):
    shards, keys = corpus["many"]
    config = _config(shards, language_weights={"en": 2.0, "zh": 0.5}, seed=11)
    seen = collections.Counter(k for b in StreamingLoader(config) for k in b["keys"])
    en = [k for i, k in enumerate(keys) if i % 2 == 0]
    zh = [k for i, k in enumerate(keys) if i % 2 == 1]
    assert all(seen[k] == 2 for k in en)
    assert set(seen[k] for k in zh) <= {0, 1}
    assert 3 <= sum(seen[k] for k in zh) <= 21  # about half of 24 kept


def test_stream_mixing_by_weight_with_a_cycling_stream(corpus):
    many, many_keys = corpus["many"]
    few, few_keys = corpus["few"]
    config = _config(many, batch_size=4, shuffle_buffer=4,
                     streams=[StreamConfig(name="main", shards=[many], weight=1.0),
                              StreamConfig(name="extra", shards=[few], weight=3.0, cycle=True)])
    batches = list(StreamingLoader(config))
    streams = collections.Counter(s for b in batches for s in b["streams"])
    main = [k for b in batches for k, s in zip(b["keys"], b["streams"]) if s == "main"]
    assert sorted(main) == sorted(many_keys), "the non-cycling stream is read exactly once"
    assert streams["extra"] > 2 * len(few_keys), "the cycling stream restarts to keep its weight"
    assert 2.0 < streams["extra"] / streams["main"] < 4.5


def test_online_noise_on_a_fraction_of_samples_is_deterministic(corpus, tmp_path):
    import json

    import numpy as np
    import soundfile as sf

    from funfactory.training.config import AugmentConfig
    from funfactory.training.runner import build_augmenter

    rng = np.random.default_rng(0)
    sf.write(tmp_path / "hum.wav", (0.2 * np.sin(np.arange(48000) * 0.05)
                                    + 0.05 * rng.standard_normal(48000)).astype(np.float32), 16000)
    (tmp_path / "noise.jsonl").write_text(json.dumps({"id": "hum", "path": "hum.wav",
                                                      "split": "train"}) + "\n")
    augment = AugmentConfig(enabled=True, fraction=0.5,
                            options={"noise_manifest": str(tmp_path / "noise.jsonl")})
    shards, keys = corpus["many"]
    config = _config(shards, augment=augment)
    clean = {k: w[: int(n)] for b in StreamingLoader(_config(shards))
             for k, w, n in zip(b["keys"], b["waveforms"], b["lengths"])}

    def noisy_run():
        loader = StreamingLoader(config, augmenter=build_augmenter(augment))
        return {k: (w[: int(n)], a) for b in loader
                for k, w, n, a in zip(b["keys"], b["waveforms"], b["lengths"], b["augmented"])}

    first, second = noisy_run(), noisy_run()
    augmented = [k for k, (_, a) in first.items() if a]
    assert 12 <= len(augmented) <= 36, len(augmented)
    for key, (wave, was_augmented) in first.items():
        assert torch.equal(wave, second[key][0])
        assert torch.equal(wave, clean[key]) != was_augmented


def test_collator_adds_features_masks_and_token_labels(corpus):
    from funfactory.model.configs import FrontendConfig
    from funfactory.model.frontend import Frontend
    from funfactory.training.collate import IGNORE_INDEX, Collator

    shards, _ = corpus["few"]
    collate = Collator(frontend=Frontend(FrontendConfig()), tokenize=lambda t: list(t.encode()))
    batch = next(iter(StreamingLoader(_config(shards), collate=collate)))
    feats, lengths, mask = batch["features"], batch["feature_lengths"], batch["feature_mask"]
    assert feats.shape[:2] == mask.shape and feats.shape[2] == 560
    assert mask.sum(1).tolist() == lengths.tolist()
    assert int(lengths.max()) == feats.shape[1]
    for row, text, n in zip(batch["labels"], batch["texts"], batch["label_lengths"]):
        assert row[:n].tolist() == list(text.encode())
        assert (row[n:] == IGNORE_INDEX).all()


def test_resume_refuses_shards_that_changed_since_the_checkpoint(speech_clips, tmp_path):
    folder = tmp_path / "shards"
    write_speech_shards(folder, speech_clips, 12, per_shard=12, dataset="chg")
    config = _config(str(folder), batch_size=2, shuffle_buffer=6)
    loader = StreamingLoader(config)
    next(iter(loader))
    state = loader.state_dict()
    write_speech_shards(tmp_path / "other", speech_clips, 12, per_shard=12, dataset="oth")
    (tmp_path / "other" / "oth-train-000000.tar").replace(folder / "chg-train-000000.tar")
    resumed = StreamingLoader(config)
    resumed.load_state_dict(state)
    with pytest.raises(FunfactoryError, match="not where the checkpoint saw them"):
        next(iter(resumed))


def test_a_checkpoint_after_an_epochs_last_batch_resumes_into_the_next_epoch(corpus):
    shards, _ = corpus["few"]
    config = _config(shards)
    loader = StreamingLoader(config)
    it = loader.batches()
    first_epoch = len(list(StreamingLoader(config)))
    for _ in range(first_epoch):
        next(it)
    state = loader.state_dict()  # after the last batch, before the epoch is closed
    resumed = StreamingLoader(config)
    resumed.load_state_dict(state)
    following = next(resumed.batches())
    assert following["keys"] and resumed.epoch == 1
