"""Simulated streaming (section 5.1): chunked prefixes that expose only past audio, each with the
partial label that a real aligner says the visible audio supports."""

from __future__ import annotations

import numpy as np
import pytest

from funfactory.pipelines.streaming.alignment import TimedWord, WordAligner, align_label
from funfactory.pipelines.streaming.chunking import (stream_prefixes, supported_text,
                                                     visible_lengths)
from funfactory.pipelines.streaming.config import StreamingConfig
from funfactory.pipelines.streaming.transforms import StreamSimulator
from tests.augment_helpers import labelled_meta


def words(*items) -> list[TimedWord]:
    return [TimedWord(text, end - 0.2, end) for text, end in items]


LABEL = "The budget review starts at nine tomorrow."
HEARD = words(("The", 0.5), ("budget", 1.0), ("review", 1.4), ("starts", 1.8), ("at", 2.0),
              ("9", 2.3), ("tomorrow.", 2.7))


def test_partial_text_is_what_the_aligned_words_support():
    alignment = align_label(LABEL, HEARD, 3.0)
    assert alignment.scored == 7 and alignment.matched == 6  # "nine" is a substitution of "9"
    assert supported_text(LABEL, alignment, 0.4) == ""
    assert supported_text(LABEL, alignment, 1.44) == "The budget review"
    assert supported_text(LABEL, alignment, 2.16) == "The budget review starts at"
    assert supported_text(LABEL, alignment, 2.88) == LABEL


def test_a_word_the_aligner_did_not_hear_waits_for_the_next_heard_word():
    heard = [w for w in HEARD if w.text != "review"]
    alignment = align_label(LABEL, heard, 3.0)
    assert alignment.matched == 5
    assert supported_text(LABEL, alignment, 1.44) == "The budget"
    assert supported_text(LABEL, alignment, 1.9) == "The budget review starts"


def test_words_after_the_last_heard_word_wait_for_the_end():
    alignment = align_label(LABEL, HEARD[:4], 3.0)
    assert supported_text(LABEL, alignment, 2.9) == "The budget review starts"
    assert supported_text(LABEL, alignment, 3.0) == LABEL


def test_chinese_label_is_timed_per_character_from_word_ends():
    label = "我们明天开会讨论Kubernetes。"
    heard = words(("我们", 0.5), ("明天", 1.0), ("开会", 1.5), ("讨论", 2.0), ("kubernetes", 3.0))
    alignment = align_label(label, heard, 3.2)
    assert supported_text(label, alignment, 1.2) == "我们明天"
    assert supported_text(label, alignment, 0.9) == "我们"  # 明 waits for the end of 明天
    assert supported_text(label, alignment, 3.1) == label


@pytest.mark.parametrize("chunk_ms", [720, 560])
def test_prefixes_are_prefixes_and_grow(chunk_ms):
    alignment = align_label(LABEL, HEARD, 3.0)
    prefixes = stream_prefixes(LABEL, alignment, 48000, chunk_ms)
    chunk = chunk_ms * 16
    assert [p.visible_samples for p in prefixes[:-1]] == [chunk * (i + 1)
                                                          for i in range(len(prefixes) - 1)]
    assert prefixes[-1].visible_samples == 48000 and prefixes[-1].final
    assert prefixes[-1].text == LABEL
    for before, after in zip(prefixes, prefixes[1:]):
        assert LABEL.startswith(before.text) and after.text.startswith(before.text)
    assert visible_lengths(1000, 720) == [1000]


@pytest.fixture(scope="module")
def simulator():
    return StreamSimulator(StreamingConfig(), WordAligner(StreamingConfig().aligners))


def test_real_aligner_prefixes_expose_only_past_audio_and_label_prefixes(simulator, speech_clips):
    for i, (text, audio) in enumerate(speech_clips[:2]):
        meta = labelled_meta(text, audio, i)
        derived, rejected = simulator.derive(meta, audio)
        assert not rejected
        assert derived[-1].meta["stream"]["final"] and derived[-1].meta["text"] == text
        partial = [d for d in derived if 0 < len(d.meta["text"]) < len(text)]
        assert partial, "some chunk must carry a partial transcript"
        previous = ""
        for d in derived:
            stream = d.meta["stream"]
            n = d.audio.size
            assert np.array_equal(d.audio, audio[:n]), "a prefix's audio is the utterance's start"
            assert d.meta["duration"] == pytest.approx(n / 16000, abs=1e-4)
            assert text.startswith(d.meta["text"]) and d.meta["text"].startswith(previous)
            previous = d.meta["text"]
            assert d.meta["task"] == "streaming" and stream["aligner"] == "whisper-tiny-en"
            if not stream["final"]:
                assert n == 11520 * (stream["chunk_index"] + 1)
                heard_by_then = [w for w, _, end in stream["words"] if end <= n / 16000]
                assert len(d.meta["text"].split()) <= len(heard_by_then)
            assert d.meta["key"] == f"{meta['key']}-s{stream['chunk_index']:04d}"


def test_a_label_that_does_not_match_the_audio_is_rejected(simulator, speech_clips):
    (_, audio), (other_text, _) = speech_clips[2], speech_clips[3]
    derived, rejected = simulator.derive(labelled_meta(other_text, audio, 9), audio)
    assert derived == [] and [r.reason for r in rejected] == ["alignment_mismatch"]


@pytest.mark.slow
def test_streaming_pipeline_writes_verified_prefix_shards(tmp_path, speech_clips):
    from funfactory.config import load_config
    from funfactory.pipelines.streaming.pipeline import run_streaming
    from funfactory.shards.reader import ShardReader
    from funfactory.shards.verify import verify
    from tests.augment_helpers import write_labelled_shards

    inputs = write_labelled_shards(tmp_path / "in", speech_clips[:3], max_count=2)
    config = load_config(StreamingConfig, None, ["chunk_ms=640"])
    result = run_streaming(inputs, tmp_path / "out", config)
    assert verify(tmp_path / "out").ok
    full = {s.key: s for s in ShardReader(inputs)}
    samples = list(ShardReader(tmp_path / "out"))
    assert len(samples) == result.summary["prefix_samples"] > 3
    assert result.summary["utterances"] == 3
    for s in samples:
        parent = full[s.meta["stream"]["parent_key"]]
        assert parent.meta["text"].startswith(s.meta["text"])
        assert np.array_equal(s.audio, parent.audio[:s.audio.size])
        assert s.meta["stream"]["chunk_ms"] == 640


@pytest.mark.slow
def test_mandarin_prefixes_from_whisper_base_word_timings(simulator):
    from funfactory.synth.tts import get_voice, resample_to_16k

    text = "今天下午我们去超市买点水果和牛奶。"
    voice = get_voice("kokoro-alpha")
    audio = resample_to_16k(voice.synthesize(text, seed=0), voice.sample_rate)
    audio = np.round(np.clip(audio, -1, 1) * 32767).astype(np.float32) / 32768
    meta = labelled_meta(text, audio, 0, uri="tts://kokoro-alpha")
    meta["language"] = "zh"
    derived, rejected = simulator.derive(meta, audio)
    assert not rejected
    texts = [d.meta["text"] for d in derived]
    assert derived[0].meta["stream"]["aligner"] == "whisper-base"
    assert all(text.startswith(t) for t in texts) and texts[-1] == text
    assert len({len(t) for t in texts}) >= 4, "the partial text grows chunk by chunk"
    for d in derived:
        assert np.array_equal(d.audio, audio[:d.audio.size])
