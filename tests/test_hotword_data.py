"""Hotword data (Fun-ASR section 5.5): hotwords mined from references, distractor lists of 0 to
hundreds, and hotword prompts on noise-only samples with an empty label."""

from __future__ import annotations

import numpy as np

from funfactory.synth import hotwords as hw
from funfactory.synth.contextual import keyword_in


def test_miner_finds_names_terms_and_rare_words():
    miner = hw.HotwordMiner()
    english = {h.text: h.kind for h in miner.mine(
        "Yesterday Doctor Chen from Goldman Sachs reviewed the GPT-4 radiology benchmark in Q3.")}
    assert english.get("Doctor Chen") == "name" and english.get("Goldman Sachs") == "name"
    assert english.get("GPT-4") == "term" and english.get("Q3") == "term"
    assert english.get("radiology") == "rare" and "Yesterday" not in english
    assert "reviewed" not in english  # a common word is no hotword
    mixed = {h.text: h.kind for h in miner.mine("我们用 Kubernetes 管理上海机房的微服务。")}
    assert mixed.get("Kubernetes") == "term" and mixed.get("上海") == "name"


def test_hotword_lists_hold_the_true_words_and_fresh_distractors():
    transcript = "The Lakers beat the Celtics at the Staples Center."
    pool = ["Lakers", "Warriors", "Kubernetes", "Celtics", "Staples Center", "radiology", "GPT-4",
            "上海", "Goldman Sachs", "warriors"] + [f"term{i}" for i in range(300)]
    hotwords, distractors = hw.build_hotword_list(["Lakers", "Celtics"], transcript, pool, 200, seed=1)
    assert {"Lakers", "Celtics"} <= set(hotwords) and len(distractors) == 200
    assert len(hotwords) == 202 and len({h.casefold() for h in hotwords}) == 202
    assert not any(keyword_in(d, transcript) for d in distractors)
    none, no_distractors = hw.build_hotword_list(["Lakers"], transcript, pool, 0, seed=1)
    assert none == ["Lakers"] and no_distractors == []


def test_distractor_counts_span_zero_to_hundreds():
    rng = np.random.default_rng(0)
    counts = [hw.distractor_count(rng, 300) for _ in range(2000)]
    assert min(counts) == 0 and max(counts) >= 200 and max(counts) <= 300
    assert np.median(counts) < 100  # most lists are short


def test_noise_only_lists_are_all_distractors():
    pool = [f"word{i}" for i in range(100)]
    words = hw.noise_only_hotwords(pool, seed=4)
    assert 1 <= len(words) <= 50 and set(words) <= set(pool)
    assert words == hw.noise_only_hotwords(pool, seed=4)


def test_hotword_job_writes_prompts_and_noise_only_negatives(tmp_path):
    from funfactory.pipelines.hotword.pipeline import HotwordConfig, run_hotword
    from funfactory.shards.reader import ShardReader

    config = HotwordConfig(max_distractors=60, limit_units=4)
    report = run_hotword(tmp_path / "out", config)
    samples = list(ShardReader(tmp_path / "out"))
    assert report["samples"] == len(samples) and not report["unaccounted"]
    speech = [s for s in samples if s.meta["task"] == "hotword"]
    noise = [s for s in samples if s.meta["task"] == "noise_only"]
    assert len(noise) == 4 and speech
    for sample in speech:
        meta = sample.meta
        true = [h["text"] for h in meta["hotword"]["true"]]
        assert set(true) <= set(meta["prompt"]["hotwords"])
        assert all(keyword_in(t, meta["raw_text"]) for t in true)
        extra = [h for h in meta["prompt"]["hotwords"] if h not in true]
        assert len(extra) == meta["hotword"]["distractors"] <= 60
        assert not any(keyword_in(h, meta["raw_text"]) for h in extra)
    assert any(s.meta["hotword"]["true"] for s in speech)
    for sample in noise:
        assert sample.meta["text"] == "" and sample.meta["prompt"]["hotwords"]
        assert sample.meta["augment"]["noise_only"] and sample.audio.size >= 16000
        assert float(np.sqrt(np.mean(sample.audio ** 2))) > 1e-3
