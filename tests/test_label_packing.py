"""Decoding windows: consecutive VAD segments of one source decoded in one Whisper window, the
text split back per segment, labels as good as decoding each segment alone and independent of
the batch a window arrives in."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from funfactory.asr.windows import assign, join, joined_samples
from funfactory.pipelines.label.packing import WindowPlanner, windows_of
from tests.label_audio import SENTENCES, TTS_RATE, speech


def test_join_lays_clips_out_with_gaps_and_reports_their_spans():
    clips = [np.ones(16000, np.float32), np.ones(8000, np.float32), np.ones(32000, np.float32)]
    audio, spans = join(clips, gap=4000)
    assert len(audio) == joined_samples([16000, 8000, 32000], 4000) == 64000
    assert spans == [(0.0, 1.0), (1.25, 1.75), (2.0, 4.0)]
    assert not audio[16000:20000].any() and audio[20000:28000].all()


def test_chunks_go_to_the_clip_holding_their_midpoint_and_straddlers_are_unresolved():
    spans = [(0.0, 3.0), (3.5, 6.0), (6.5, 9.0)]
    owners, unresolved = assign([(0.0, 3.2), (3.3, 6.3), (6.4, 9.0)], spans)
    assert owners == [0, 1, 2] and unresolved == set()  # sloppy timestamps within tolerance
    owners, unresolved = assign([(0.0, 4.9), (4.9, 9.0)], spans)
    assert owners == [0, 2] and unresolved == {0, 1, 2}  # words of clip 1 timed into 0 and 2
    owners, unresolved = assign([(0.0, 6.0)], spans)
    assert owners == [0] and unresolved == {0, 1}  # two segments read as one sentence


def test_the_planner_fills_windows_in_order_and_never_overfills_them():
    planner = WindowPlanner(pack_seconds=10.0, gap_seconds=0.5)
    placed = [planner.place(d) for d in (3.0, 3.0, 3.0, 1.0, 12.0, 2.0)]
    assert placed == [(0, True), (0, False), (0, False), (1, True), (2, True), (3, True)]
    alone = WindowPlanner(pack_seconds=0.0, gap_seconds=0.5)
    assert [alone.place(1.0)[0] for _ in range(3)] == [0, 1, 2]


def test_windows_of_a_batch_follow_segment_order_window_and_language():
    segments = [{"index": 2, "window": 0}, {"index": 0, "window": 0}, {"index": 3, "window": 1},
                {"index": 5}, {"index": 4, "window": 1}]
    languages = ["en", "en", "en", "en", "de"]
    assert windows_of(segments, languages, lambda lang: True) == [[1, 0], [2], [4], [3]]
    assert windows_of(segments, languages, lambda lang: lang == "en") == [[1, 0], [2], [3]]


@pytest.fixture(scope="module")
def whisper_systems():
    """The label job's two Whisper systems (pocketsphinx decodes segment by segment: packing
    does not touch it)."""
    import torch
    torch.set_num_threads(1)
    from funfactory.pipelines.label.config import AsrConfig
    from funfactory.pipelines.label.pseudo_label import PseudoLabel
    cfg = AsrConfig()
    whispers = [spec for spec in cfg.backends if spec.kind.startswith("whisper")]
    dofn = PseudoLabel(whispers, gap_seconds=cfg.pack_gap_seconds)
    dofn.setup()
    return dofn


def _segments(first_index, texts, window):
    out = []
    for i, text in enumerate(texts):
        audio = soxr.resample(speech(text), TTS_RATE, 16000).astype(np.float32)
        audio = np.concatenate([np.zeros(3200, np.float32), audio, np.zeros(3200, np.float32)])
        out.append({"key": f"s{first_index + i}", "index": first_index + i, "window": window,
                    "audio": audio, "duration": len(audio) / 16000, "language_hint": "en",
                    "stage_seconds": {}})
    return out


def _label(dofn, batch):
    return {p["key"]: p for _, _, p in dofn.process(("unit", "batch", batch))}


def test_a_packed_window_labels_its_segments_the_same_in_any_batch(whisper_systems,
                                                                    monkeypatch):
    from funfactory.eval.scoring import wer
    alone = []
    for backend in whisper_systems.backends:
        def counted(audios, languages=None, word_timestamps=False, original=backend.transcribe_batch):
            alone.append(len(audios))
            return original(audios, languages, word_timestamps)
        monkeypatch.setattr(backend, "transcribe_batch", counted)
    window = _segments(0, SENTENCES[:3], window=0)
    packed = _label(whisper_systems, window + _segments(3, SENTENCES[3:4], window=1))
    assert alone == [1, 1]  # only the lone segment s3: the window was decoded as one
    again = _label(whisper_systems, window)
    for key in ("s0", "s1", "s2"):
        assert packed[key]["labels"] == again[key]["labels"]
    refs = list(SENTENCES[:3])
    for system in ("whisper-base", "whisper-tiny-en"):
        # each sentence back on its own segment (within a word: "riverbank")
        assert wer(refs, [packed[f"s{i}"]["labels"][system]["text"] for i in range(3)]).rate \
            <= 0.1, system
        for i in range(3):
            label = packed[f"s{i}"]["labels"][system]
            assert -1.0 < label["avg_logprob"] <= 0.0 and 0.0 <= label["no_speech_prob"] <= 1.0


def test_a_window_cut_off_by_the_token_limit_is_decoded_clip_by_clip(monkeypatch):
    from funfactory.asr import whisper
    backend = whisper.whisper_tiny_en().load()
    clips = [seg["audio"] for seg in _segments(0, SENTENCES[:3], window=0)]
    monkeypatch.setattr(whisper, "MAX_TOKENS", 24)  # three sentences need about 40 tokens
    [packed] = backend.transcribe_windows([clips], ["en"], gap_seconds=0.3)
    alone = backend.transcribe_batch(clips, ["en"] * 3)
    assert [t.text for t in packed] == [t.text for t in alone]
    assert [t.extras for t in packed] == [t.extras for t in alone]
