"""The embedded corpus's known utterances as a gold shard set, and the demo over it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from funfactory.pipelines.reference import read_manifest, write_reference_shards
from funfactory.shards.reader import ShardReader
from funfactory.shards.verify import verify
from funfactory.synth.corpus import default_corpus


@pytest.fixture(scope="module")
def corpus():
    return default_corpus("tiny")


def test_reference_shards_hold_every_known_utterance(tmp_path, corpus):
    write_reference_shards(corpus.root, tmp_path)
    report = verify(tmp_path)
    assert report.ok, report.problems
    utterances = list(read_manifest(corpus.root))
    samples = {s.meta["raw_text"]: s for s in ShardReader(tmp_path)}
    assert len(samples) == len(utterances) == corpus.counts["utterances"]
    for utt in utterances:
        sample = samples[utt.text]
        assert sample.meta["language"] == utt.language
        assert sample.meta["source"]["offset"] == pytest.approx(utt.start, abs=1e-3)
        assert abs(len(sample.audio) / 16000 - (utt.end - utt.start)) < 0.01
        assert np.sqrt(np.mean(sample.audio ** 2)) > 0.005  # speech, not a silent gap


def test_reference_labels_are_inverse_normalised(tmp_path, corpus):
    write_reference_shards(corpus.root, tmp_path)
    spoken_numbers = [s for s in ShardReader(tmp_path)
                      if any(c in s.meta["raw_text"] for c in "零一二三四五六七八九十点")
                      and s.meta["text"] != s.meta["raw_text"]]
    for sample in spoken_numbers:
        assert any(c.isdigit() for c in sample.meta["text"]), sample.meta


@pytest.mark.slow
def test_demo_runs_and_a_second_run_reuses_its_work(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "funfactory.cli", "demo", "--out", str(out), "--scale", "tiny"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    report = json.loads((out / "report" / "report.json").read_text())
    assert all(not s["reused"] for s in report["stages"])
    assert (out / "report" / "report.md").read_text().count("## ") >= len(report["stages"])
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads((out / "report" / "report.json").read_text())
    assert all(s["reused"] for s in again["stages"])
    assert again["total_seconds"] < report["total_seconds"] / 3


def test_a_demo_stage_whose_inputs_changed_runs_afresh(tmp_path, monkeypatch):
    from funfactory import demo

    monkeypatch.setattr(demo, "STAGES", [s for s in demo.STAGES if s.name in ("corpus", "split")])
    out = tmp_path / "demo"
    demo.run_demo(out)
    planted = out / "split" / "left-by-an-older-recipe.jsonl"
    planted.write_text("{}\n")
    assert all(r.reused for r in demo.run_demo(out).results)  # same key: reused, untouched
    assert planted.exists()
    marker = out / ".done" / "02-split.json"
    saved = json.loads(marker.read_text())
    marker.write_text(json.dumps({**saved, "token": "an older recipe's"}))
    again = demo.run_demo(out)
    assert [r.reused for r in again.results] == [True, False]
    assert not planted.exists() and (out / "split" / "train.jsonl").is_file()
    assert json.loads(marker.read_text())["token"] == saved["token"]


def test_the_llm_conversion_runs_beside_earlier_stages_and_fails_the_stage_that_needs_it(
        tmp_path, monkeypatch):
    import threading

    from funfactory import demo
    from funfactory.errors import MissingAssetError
    from funfactory.synth.llm import transformers_backend

    converting, stage_ran = threading.Event(), threading.Event()
    order = []

    def convert(name):
        order.append(f"convert {name}")
        converting.set()
        stage_ran.wait(10)  # finishes only once the stage before has run beside it
        raise MissingAssetError(f"LLM {name!r} is not installed")

    def earlier(run):
        assert converting.wait(10), "the conversion did not start beside the first stage"
        order.append("earlier")
        stage_ran.set()
        return {}

    def loads_an_llm(run):
        order.append("loads an LLM")
        return {}

    monkeypatch.setattr(transformers_backend, "packaged_model_dir", convert)
    stages = [demo.Stage("earlier", earlier, "no LLM"),
              demo.Stage("llm", loads_an_llm, "an LLM", needs_llms=True)]
    monkeypatch.setattr(demo, "STAGES", stages)
    with pytest.raises(MissingAssetError, match="not installed"):
        demo.run_demo(tmp_path / "demo")
    assert order == ["convert gemma3-270m", "earlier"]
    # with no LLM stage ahead nothing is converted
    order.clear()
    monkeypatch.setattr(demo, "STAGES", [demo.Stage("llm-free", loads_an_llm, "no LLM")])
    demo.run_demo(tmp_path / "other")
    assert order == ["loads an LLM"]


def _english_test_shards(out_dir, clips):
    from funfactory.shards.schema import new_meta
    from funfactory.shards.writer import ShardWriter

    with ShardWriter(out_dir, "heldout", "test") as writer:
        for i, (text, audio) in enumerate(clips):
            writer.write(new_meta(key=f"utt{i}", text=text, language="en",
                                  duration=len(audio) / 16000, task="test", source_id=f"s{i}",
                                  uri=f"file:///s{i}.wav", pipeline="test", version="0",
                                  config_sha256="0" * 64), audio)
    return out_dir


def test_final_scoring_in_two_processes_equals_scoring_in_one(tmp_path, monkeypatch):
    """The demo model's final scoring, its chunks decoded by two spawned one-thread processes,
    gives every utterance of every set the transcripts that decoding in this process gives, in
    the shards' order (a tiny model choosing among 3 LLM candidates)."""
    from funfactory import demo_model
    from funfactory.model.checkpoint import save_model
    from tests.conftest_model import tiny_model
    from tests.eval_speech import SENTENCES, speech

    model = tiny_model(texts=SENTENCES)  # decodes on one thread, like each worker
    model.config.decode_candidates = 3
    save_model(model, tmp_path / "model", copy_llm=False)
    clips = list(zip(SENTENCES, speech()))
    sets = {"a": _english_test_shards(tmp_path / "a", clips),
            "b": _english_test_shards(tmp_path / "b", clips[:3])}
    monkeypatch.setattr(demo_model, "SCORING_CHUNK", 3)  # four chunks over two processes
    alone = demo_model.final_transcripts(tmp_path / "model", sets, workers=1)
    split = demo_model.final_transcripts(tmp_path / "model", sets, workers=2)
    assert split == alone
    assert [row[0] for row in split["a"]] == list(SENTENCES)
    assert [row[0] for row in split["b"]] == list(SENTENCES[:3])
    assert {row[4] for rows in split.values() for row in rows} == {3}
