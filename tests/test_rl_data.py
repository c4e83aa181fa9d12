"""RL data (section 4.4.3): the subset rules on planted hypotheses, equal shares, the Beam job."""

from __future__ import annotations

import json

import numpy as np
import pytest

from funfactory.pipelines.rl.config import RLDataConfig
from funfactory.pipelines.rl.select import (Classification, classify, hallucination_reasons,
                                            is_hard_case, quotas, select)

REF = ("please send the quarterly deployment notes to the whole engineering team before the "
       "review on friday")  # 16 words


def _drop(text: str, words: int) -> str:
    return " ".join(text.split()[words:])


def test_hard_case_rule_on_planted_hypotheses():
    cfg = RLDataConfig()
    agree = {"whisper-base": REF, "whisper-tiny-en": REF, "pocketsphinx": REF}
    model_bad = _drop(REF, 2)  # 2 of 16 words missing: 12.5 % > 10 %
    model_ok = _drop(REF, 1)  # 6.25 %
    hard, figures = is_hard_case(agree, model_bad, REF, "en", cfg)
    assert hard and figures["model_error"] == pytest.approx(0.125)
    assert figures["max_pairwise_error"] == 0.0
    assert not is_hard_case(agree, model_ok, REF, "en", cfg)[0]
    # one system 1 word off (6.25 % from the others): they no longer agree below 5 %
    disagree = dict(agree, pocketsphinx=_drop(REF, 1))
    assert not is_hard_case(disagree, model_bad, REF, "en", cfg)[0]
    # a 33-word reference lets one system be one word off (3 %) and still agree
    long_ref = REF + " " + REF + " thanks"
    slightly = {"a": long_ref, "b": long_ref, "c": _drop(long_ref, 1)}
    assert is_hard_case(slightly, _drop(long_ref, 4), long_ref, "en", cfg)[0]
    # two systems are not enough to call agreement
    assert not is_hard_case({"a": REF, "b": REF}, model_bad, REF, "en", cfg)[0]
    assert not is_hard_case(agree, None, REF, "en", cfg)[0]


def test_hallucination_reasons():
    cfg = RLDataConfig()
    assert hallucination_reasons("thank you", "thank you thank you thank you so much", "en", cfg) \
        == ["output_too_long", "output_repeats"]
    assert hallucination_reasons("", "thanks for watching", "en", cfg) == ["text_on_noise"]
    assert hallucination_reasons("no no no no I said no", "no no no no I said no", "en", cfg) \
        == ["reference_repeats"]
    assert hallucination_reasons(REF, REF, "en", cfg) == []


def _meta(key, text="hello there", duration=2.0, **extra):
    return {"key": key, "text": text, "language": "en", "duration": duration,
            "prompt": {"context": [], "hotwords": [], "previous_text": None}, **extra}


def test_priority_assigns_one_subset_and_keeps_all_reasons():
    cfg = RLDataConfig()
    meta = _meta("k", text="thank you", duration=25.0,
                 prompt={"context": [], "hotwords": ["Kubernetes"], "previous_text": None})
    c = classify(meta, "thank you thank you thank you thank you", cfg)
    assert c.subset == "hallucination"
    assert c.qualifies == ["long", "hallucination", "keyword", "regular"]
    assert c.tag()["keywords"] == ["Kubernetes"]
    assert classify(_meta("r"), "hello there", cfg).subset == "regular"


def test_equal_shares():
    cfg = RLDataConfig()
    assert quotas({"hard": 3, "long": 5, "hallucination": 4, "keyword": 9, "regular": 20}, cfg) \
        == dict.fromkeys(["hard", "long", "hallucination", "keyword", "regular"], 3)
    assert quotas({"hard": 0, "long": 5, "hallucination": 4, "keyword": 9, "regular": 20}, cfg)["hard"] == 0
    capped = RLDataConfig(per_subset_max=2)
    assert set(quotas({"hard": 3, "long": 5, "hallucination": 4, "keyword": 9, "regular": 20},
                      capped).values()) == {2}
    classes = [Classification(f"{s}{i}", s, [s]) for s, n in
               [("hard", 2), ("long", 3), ("hallucination", 2), ("keyword", 2), ("regular", 6)]
               for i in range(n)]
    kept, summary = select(classes, cfg)
    assert summary["kept"] == dict.fromkeys(summary["kept"], 2) and len(kept) == 10
    again, _ = select(list(reversed(classes)), cfg)
    assert set(again) == set(kept)  # the choice depends on keys, not input order


def _write_inputs(folder):
    """Eleven TTS samples with planted label hypotheses: 2 hard, 2 long, 2 hallucination,
    2 keyword, 3 regular."""
    from funfactory.shards.schema import new_meta
    from funfactory.shards.writer import ShardWriter
    from tests import rl_helpers

    clips = rl_helpers.tts_clips()
    silence = np.zeros(8000, dtype=np.float32)
    long_audio = np.concatenate([np.concatenate([a, silence]) for _, a in clips] * 2)
    assert len(long_audio) / 16000 > 20

    def labels(text, model, systems=3):
        names = ["whisper-base", "whisper-tiny-en", "pocketsphinx"][:systems]
        out = {n: {"text": text} for n in names}
        out["current_model"] = {"text": model}
        out["chosen"] = names[0]
        return out

    samples = []
    for i, (text, audio) in enumerate(clips[:2]):
        samples.append(("hard", text, audio, labels(text, " ".join(text.split()[3:])), "asr", []))
    for i in range(2):
        text = " ".join(t for t, _ in clips) + " " + " ".join(t for t, _ in clips)
        samples.append(("long", text, long_audio, labels(text, text), "asr", []))
    noise = (0.01 * np.random.default_rng(0).standard_normal(24000)).astype(np.float32)
    samples.append(("hallucination", "", noise, labels("", "thank you for watching", 1),
                    "noise_only", []))
    text, audio = clips[2]
    samples.append(("hallucination", text, audio,
                    labels(text, text + " the whole team the whole team the whole team"), "asr", []))
    for i, (text, audio) in enumerate(clips[1:3]):
        samples.append(("keyword", text, audio, labels(text, text), "hotword", ["Berlin", "deployment"]))
    for i, (text, audio) in enumerate(clips[:3]):
        samples.append(("regular", text, audio, labels(text, text), "asr", []))
    with ShardWriter(folder, "labelled", "train", max_count=4) as writer:
        for i, (planted, text, audio, lab, task, hotwords) in enumerate(samples):
            meta = new_meta(key=f"src{i:02d}-seg000", text=text, language="en",
                            duration=len(audio) / 16000, task=task, source_id=f"src{i:02d}",
                            uri=f"file:///planted/{i}.wav", pipeline="test", version="0",
                            config_sha256="0" * 64, labels=lab, planted=planted)
            meta["prompt"]["hotwords"] = hotwords
            writer.write(meta, audio)
    return samples


@pytest.mark.slow
def test_pipeline_keeps_equal_tagged_shares_and_accounts_for_every_input(tmp_path):
    from funfactory.pipelines.common.rejects import read_rejects
    from funfactory.pipelines.rl.pipeline import run_rl_data
    from funfactory.shards.reader import ShardReader

    planted = _write_inputs(tmp_path / "in")
    result = run_rl_data(tmp_path / "in", tmp_path / "out", RLDataConfig(max_count=5),
                         echo=lambda *_: None)
    out = list(ShardReader(tmp_path / "out"))
    subsets = [s.meta["rl"]["subset"] for s in out]
    assert sorted(subsets) == sorted(["hard", "long", "hallucination", "keyword", "regular"] * 2)
    for s in out:  # every kept sample is where the planted labels put it
        assert s.meta["rl"]["subset"] == s.meta["planted"]
        assert s.meta["lineage"]["pipeline"] == "rl"
    rejects = read_rejects(tmp_path / "out" / "_reports" / "rl-rejects.parquet")
    assert [r["reason"] for r in rejects] == ["not_selected"]
    assert len(out) + len(rejects) == len(planted)
    selection = json.loads((tmp_path / "out" / "_reports" / "rl-selection.json").read_text())
    assert selection["candidates"]["regular"] == 3 and selection["kept"]["regular"] == 2
    assert result.summary["samples"] == 10
    first = sorted(p.read_bytes() for p in (tmp_path / "out").glob("*.tar"))
    again = run_rl_data(tmp_path / "in", tmp_path / "out", RLDataConfig(max_count=5),
                        echo=lambda *_: None)
    assert sorted(p.read_bytes() for p in (tmp_path / "out").glob("*.tar")) == first
    assert again.summary == result.summary


def test_decoding_with_a_model_gives_the_caller_its_thread_count_back(tmp_path, monkeypatch):
    import os

    import torch

    from funfactory.model.checkpoint import save_model
    from funfactory.pipelines.common.runner import beam_options, decoder_threads
    from funfactory.pipelines.rl.pipeline import ClassifyShard, run_rl_data
    from tests.conftest_model import tiny_model

    decoding_threads = []
    hypotheses = ClassifyShard._hypotheses

    def spy(self, samples):
        decoding_threads.append(torch.get_num_threads())
        return hypotheses(self, samples)

    monkeypatch.setattr(ClassifyShard, "_hypotheses", spy)
    monkeypatch.delenv("FUNFACTORY_ASR_THREADS", raising=False)
    folder = save_model(tiny_model(), tmp_path / "model")
    _write_inputs(tmp_path / "in")
    config = RLDataConfig(max_count=5, max_new_tokens=4)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        # one in-process worker: its decoder takes every core; the caller gets its count back
        run_rl_data(tmp_path / "in", tmp_path / "one", config, model_dir=folder,
                    echo=lambda *_: None)
        assert set(decoding_threads) == {len(os.sched_getaffinity(0))}
        assert torch.get_num_threads() == 3
        # two workers share the cores: one thread each
        assert decoder_threads(beam_options(direct_num_workers=2)) == 1
        # the environment decides where it is set
        decoding_threads.clear()
        monkeypatch.setenv("FUNFACTORY_ASR_THREADS", "2")
        run_rl_data(tmp_path / "in", tmp_path / "env", config, model_dir=folder,
                    echo=lambda *_: None)
        assert set(decoding_threads) == {2}
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
