"""The label job reads Kaldi data directories, NeMo manifests and Fun-ASR JSONL, and treats their
human transcripts as references: kept as the label, checked by the ASR systems, and sent to
review when no system supports them."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import soundfile as sf

from funfactory.config import load_config
from funfactory.errors import FunfactoryError
from funfactory.pipelines.common.runner import beam_options
from funfactory.pipelines.label.config import IngestConfig, LabelConfig
from funfactory.pipelines.label.ingest import list_sources
from funfactory.pipelines.label.pipeline import run_label, uses_reference_labels
from funfactory.shards.reader import ShardReader
from tests.label_audio import SENTENCES, TTS_RATE, recording

FAST = ["asr.backends=[{kind: whisper-tiny-en}]", "asr.batch_size=4"]


def kaldi_dir(tmp_path, texts, transcripts):
    """One 24 kHz recording of `texts`, and a Kaldi directory whose segments cut it at each
    sentence (0.3 s of padding) with `transcripts` as their text."""
    audio, spans = recording(texts)
    wav = tmp_path / "talk.wav"
    sf.write(wav, audio, TTS_RATE)
    data = tmp_path / "data"
    data.mkdir()
    ids = [f"spk1-utt{i}" for i in range(len(texts))]
    (data / "wav.scp").write_text(f"talk {wav}\n")
    (data / "segments").write_text("".join(f"{u} talk {s - 0.3:.3f} {e + 0.3:.3f}\n"
                                           for u, (s, e, _) in zip(ids, spans)))
    (data / "text").write_text("".join(f"{u} {t}\n" for u, t in zip(ids, transcripts)))
    (data / "utt2spk").write_text("".join(f"{u} spk1\n" for u in ids))
    (data / "utt2lang").write_text("".join(f"{u} en\n" for u in ids))
    return data, spans


def test_a_kaldi_directory_is_labelled_with_its_transcripts_checked_by_asr(tmp_path):
    wrong = SENTENCES[5]  # planted: the third segment's transcript is another sentence
    data, _ = kaldi_dir(tmp_path, SENTENCES[:3], [*SENTENCES[:2], wrong])
    out = tmp_path / "out"
    report = run_label(load_config(LabelConfig, None, FAST), data, out, options=beam_options())
    assert report.unaccounted == []
    metas = [s.meta for s in ShardReader(out, decode=False)]
    assert sorted(m["raw_text"] for m in metas) == sorted(SENTENCES[:2])
    for meta in metas:
        labels = meta["labels"]
        assert labels["chosen"] == "reference" and labels["reference"]["text"] == meta["raw_text"]
        assert labels["reference"]["metric"] == "wer"
        assert labels["reference"]["with_reference"]["whisper-tiny-en"] < 0.25
        assert labels["reference"]["best_system"] == "whisper-tiny-en"
        assert "text" in labels["whisper-tiny-en"]
    rejects = pq.read_table(out / "_reports" / "label-rejects.parquet").to_pylist()
    flagged = [r for r in rejects if r["reason"] == "reference_unsupported"]
    assert len(flagged) == 1 and flagged[0]["stage"] == "reference"
    assert wrong[:40] in flagged[0]["detail"] and "whisper-tiny-en" in flagged[0]["detail"]


def test_reference_labels_follow_the_input_kind_unless_told(tmp_path):
    data, _ = kaldi_dir(tmp_path, SENTENCES[:1], SENTENCES[:1])
    corpus = tmp_path / "list.jsonl"
    corpus.write_text(json.dumps({"uri": "talk.wav", "text": SENTENCES[0]}) + "\n")
    cfg = load_config(LabelConfig, None, [])
    assert uses_reference_labels(cfg, data) and not uses_reference_labels(cfg, corpus)
    cfg = load_config(LabelConfig, None, ["reference.as_label=always"])
    assert uses_reference_labels(cfg, corpus)
    cfg = load_config(LabelConfig, None, ["reference.as_label=never"])
    assert not uses_reference_labels(cfg, data)
    with pytest.raises(FunfactoryError, match="reference.as_label 'sometimes'"):
        uses_reference_labels(load_config(LabelConfig, None, ["reference.as_label=sometimes"]),
                              data)


def test_ingest_lists_kaldi_nemo_and_funasr_sources_with_their_spans(tmp_path):
    data, spans = kaldi_dir(tmp_path, SENTENCES[:2], SENTENCES[:2])
    sources = list_sources(data, IngestConfig())
    assert sorted((s.offset, s.reference, s.language) for s in sources) == [
        (pytest.approx(s - 0.3), text, "en") for s, _, text in spans]
    wav = tmp_path / "talk.wav"
    nemo = tmp_path / "manifest.json"
    nemo.write_text("".join(json.dumps({"audio_filepath": wav.name, "offset": s - 0.3,
                                        "duration": e - s + 0.6, "text": t, "lang": "en"}) + "\n"
                            for s, e, t in spans))
    nemo_sources = list_sources(nemo, IngestConfig())
    by_text = {s.utterances[0][2]: s.utterances[0][:2] for s in nemo_sources}
    assert by_text == {t: (pytest.approx(s - 0.3), pytest.approx(e + 0.3)) for s, e, t in spans}
    funasr = tmp_path / "data.jsonl"
    funasr.write_text(json.dumps({"messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": f"语音转写成英文：<|startofspeech|>!{wav.name}<|endofspeech|>"},
        {"role": "assistant", "content": "hello"}], "speech_length": 1, "text_length": 1}) + "\n")
    (source,) = list_sources(funasr, IngestConfig())
    assert source.path == str(wav.resolve()) and source.language == "en"
    assert source.utterances[0][2] == "hello" and source.utterances[0][1] > 10


def test_an_utterance_without_transcript_is_pseudo_labelled_as_usual(tmp_path):
    data, _ = kaldi_dir(tmp_path, SENTENCES[:2], SENTENCES[:2])
    (data / "text").write_text(f"spk1-utt0 {SENTENCES[0]}\n")
    references = sorted((s.reference or "", len(s.utterances))
                        for s in list_sources(data, IngestConfig()))
    assert references == [("", 0), (SENTENCES[0], 1)]


def test_ingest_sends_a_tarred_nemo_manifest_to_shards_from_nemo(tmp_path):
    (tmp_path / "tarred_audio_manifest.json").write_text(json.dumps(
        {"audio_filepath": "a.flac", "duration": 1.0, "text": "x", "shard_id": 0}) + "\n")
    with pytest.raises(FunfactoryError, match="funfactory shards from-nemo"):
        list_sources(tmp_path / "tarred_audio_manifest.json", IngestConfig())
