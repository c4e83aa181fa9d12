"""The shard contract: round trips, caps, atomic writes, verify, hostile tars, interop."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from funfactory.errors import UnsafeInputError
from funfactory.shards.index import read_index
from funfactory.shards.reader import ShardReader, expand_urls
from funfactory.shards.schema import SchemaError
from funfactory.shards.verify import verify
from funfactory.shards.writer import ShardWriter
from funfactory.tests.shard_faults import hostile_tar, rewrite_members, sample_meta, write_clips


def test_round_trip_is_bit_exact_for_audio_and_metadata(tmp_path, speech_clips):
    write_clips(tmp_path, speech_clips)
    samples = list(ShardReader(tmp_path))
    assert [s.meta["text"] for s in samples] == [t for t, _ in speech_clips]
    for (text, audio), sample in zip(speech_clips, samples):
        assert sample.audio.dtype == np.float32
        assert np.array_equal(sample.audio, audio)
        assert sample.meta == sample_meta(samples.index(sample), text, audio)


def test_shards_are_capped_named_deterministically_and_reproducible(tmp_path, speech_clips):
    first = write_clips(tmp_path / "a", speech_clips, max_count=3)
    second = write_clips(tmp_path / "b", speech_clips, max_count=3)
    assert [p.name for p in first] == ["demo-train-000000.tar", "demo-train-000001.tar",
                                       "demo-train-000002.tar"]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    index = read_index(tmp_path / "a")
    assert index.num_rows == len(speech_clips)
    assert index.column("shard").to_pylist().count("demo-train-000000.tar") == 3


def test_size_cap_starts_a_new_shard(tmp_path, speech_clips):
    biggest = max(len(a) for _, a in speech_clips) * 2
    with ShardWriter(tmp_path, "demo", "train", max_bytes=biggest + 8192) as w:
        for i, (text, audio) in enumerate(speech_clips):
            w.write(sample_meta(i, text, audio), audio)
    assert len(w.shards) >= 2
    assert all(p.stat().st_size <= biggest + 8192 + 10240 for p in w.shards)


@pytest.mark.parametrize("change, message", [
    ({"key": "src.bad-seg00001"}, "no dots"),
    ({"language": "English"}, "language"),
    ({"task": "karaoke"}, "task"),
    ({"text": ""}, "empty"),
])
def test_writer_refuses_schema_violations(tmp_path, speech_clips, change, message):
    text, audio = speech_clips[0]
    meta = {**sample_meta(0, text, audio), **change}
    with pytest.raises(SchemaError, match=message), ShardWriter(tmp_path, "demo") as w:
        w.write(meta, audio)
    assert not list(tmp_path.glob("*.tar")) and not list(tmp_path.glob(".*.partial"))


def test_writer_refuses_a_duplicate_key_and_wrong_rate(tmp_path, speech_clips):
    text, audio = speech_clips[0]
    with pytest.raises(SchemaError, match="twice"), ShardWriter(tmp_path, "demo") as w:
        w.write(sample_meta(0, text, audio), audio)
        w.write(sample_meta(0, text, audio), audio)
    with pytest.raises(ValueError, match="resample"), ShardWriter(tmp_path, "demo") as w:
        w.write(sample_meta(0, text, audio), audio, sample_rate=8000)


def test_noise_only_samples_may_have_empty_text(tmp_path, speech_clips):
    _, audio = speech_clips[0]
    with ShardWriter(tmp_path, "noise") as w:
        w.write(sample_meta(0, "", audio, task="noise_only"), audio)
    assert next(iter(ShardReader(tmp_path))).meta["text"] == ""


def test_verify_passes_a_clean_set_and_cli_agrees(tmp_path, speech_clips):
    write_clips(tmp_path, speech_clips, max_count=4)
    report = verify(tmp_path)
    assert report.ok, report.problems
    assert (report.shards, report.samples) == (2, len(speech_clips))
    cli = subprocess.run([sys.executable, "-m", "funfactory.cli", "shards", "verify",
                          str(tmp_path)], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stdout + cli.stderr


def test_verify_reports_a_truncated_shard(tmp_path, speech_clips):
    shards = write_clips(tmp_path, speech_clips, max_count=4)
    data = shards[0].read_bytes()
    shards[0].write_bytes(data[: len(data) // 2])
    report = verify(tmp_path)
    assert not report.ok
    assert {p.reason for p in report.problems} >= {"broken_shard"}
    assert all(p.shard == shards[0].name for p in report.problems)


def test_verify_reports_a_flipped_byte_in_audio(tmp_path, speech_clips):
    write_clips(tmp_path, speech_clips)
    row = read_index(tmp_path).to_pylist()[2]
    shard = tmp_path / row["shard"]
    data = bytearray(shard.read_bytes())
    data[row["audio_offset"] + row["audio_size"] // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    report = verify(tmp_path)
    bad = [p for p in report.problems if p.key == row["key"]]
    assert bad and bad[0].reason in {"audio_sha256", "bad_audio"}
    assert all(p.key == row["key"] for p in report.problems)


def test_verify_reports_a_duplicate_key(tmp_path, speech_clips):
    shards = write_clips(tmp_path, speech_clips[:3])
    keys = read_index(tmp_path).column("key").to_pylist()
    with tarfile.open(shards[0]) as tar:
        first_sample = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()][:2]
    # The first sample appears again after the last one.
    rewrite_members(shards[0], lambda name, data: [(name, data)] + (
        first_sample if name == f"{keys[-1]}.flac" else []))
    report = verify(tmp_path)
    assert [(p.key, p.reason) for p in report.problems] == [(keys[0], "duplicate_key")]


def test_verify_reports_a_schema_violation(tmp_path, speech_clips):
    shards = write_clips(tmp_path, speech_clips[:3])
    key = read_index(tmp_path).column("key")[1].as_py()

    def break_language(name, data):
        if name == f"{key}.json":
            meta = json.loads(data)
            meta["language"] = "Klingon!"
            data = json.dumps(meta).encode()
        return [(name, data)]
    rewrite_members(shards[0], break_language)
    report = verify(tmp_path)
    assert [(p.key, p.reason) for p in report.problems] == [(key, "schema")]
    assert "language" in report.problems[0].detail


def first_name(shard: Path) -> str:
    with tarfile.open(shard) as tar:
        return tar.getnames()[0]


def test_verify_without_an_index_still_checks_every_tar(tmp_path, speech_clips):
    shards = write_clips(tmp_path, speech_clips[:6], max_count=2)
    for index in tmp_path.glob("*.parquet"):
        index.unlink()
    keys = [sample.key for sample in ShardReader(tmp_path, decode=False)]
    # shard 1: one audio member is not FLAC; shard 2: its first sample is shard 0's again
    rewrite_members(shards[1], lambda name, data: [(name, b"not flac" * 64 if name ==
                                                   f"{keys[3]}.flac" else data)])
    with tarfile.open(shards[0]) as tar:
        first = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()][:2]
    head = first_name(shards[2])
    rewrite_members(shards[2], lambda name, data: first + [(name, data)] if name == head
                    else [(name, data)])
    hostile = hostile_tar(tmp_path / "demo-train-000003.tar", "symlink")
    report = verify(tmp_path)
    found = sorted((p.shard, p.key, p.reason) for p in report.problems)
    assert found == sorted([
        (str(tmp_path), None, "no_index"),
        (shards[1].name, keys[3], "bad_audio"),
        (shards[2].name, keys[0], "duplicate_key"),
        (hostile.name, None, "unsafe_member")])
    assert report.per_shard == {
        shards[0].name: {"samples": 2, "problems": 0},
        shards[1].name: {"samples": 1, "problems": 1},
        shards[2].name: {"samples": 3, "problems": 1},
        hostile.name: {"samples": 0, "problems": 1}}
    cli = subprocess.run([sys.executable, "-m", "funfactory.cli", "shards", "verify",
                          str(tmp_path)], capture_output=True, text=True)
    assert cli.returncode == 1
    assert f"{hostile.name}: 0 samples, 1 problems" in cli.stdout


def test_an_interrupted_write_leaves_no_shard_a_reader_would_take(tmp_path, speech_clips):
    text, audio = speech_clips[0]
    np.save(tmp_path / "clip.npy", audio)
    script = f"""
import os, numpy as np
from funfactory.shards.writer import ShardWriter
from funfactory.tests.shard_faults import sample_meta
audio = np.load({str(tmp_path / 'clip.npy')!r})
w = ShardWriter({str(tmp_path / 'out')!r}, "demo", "train", max_count=2)
for i in range(3):
    w.write(sample_meta(i, {text!r}, audio), audio)
os._exit(9)  # killed before close(): the second shard is half written
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 9, run.stderr
    out = tmp_path / "out"
    assert [p.name for p in out.glob("*.tar")] == ["demo-train-000000.tar"]
    assert [Path(u).name for u in expand_urls(out)] == ["demo-train-000000.tar"]
    assert len(list(ShardReader(out))) == 2
    from funfactory.shards.index import merge_index
    merge_index(out, "demo", "train")
    report = verify(out)
    assert report.ok and [w.reason for w in report.warnings] == ["partial_shard"]


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink", "hardlink", "huge"])
def test_hostile_tars_are_refused_with_their_reason(tmp_path, kind):
    shard = hostile_tar(tmp_path / f"evil-train-{0:06d}.tar", kind)
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    reader = ShardReader([str(shard)])
    assert list(reader) == []
    assert reader.errors == {"unsafe_member": 1}
    reason = reader.error_log[0].detail
    assert {"absolute": "absolute path", "dotdot": "'..'", "symlink": "link",
            "hardlink": "link", "huge": "over the"}[kind] in reason
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
    assert not Path("/tmp/funfactory-evil.json").exists()
    from funfactory.shards.safety import check_member
    with tarfile.open(shard, "r|") as tar, pytest.raises(UnsafeInputError):
        check_member(next(iter(tar)), str(shard))


def test_reader_survives_a_bad_member_and_counts_it(tmp_path, speech_clips):
    shards = write_clips(tmp_path, speech_clips[:4])
    victim = read_index(tmp_path).column("key")[1].as_py()
    rewrite_members(shards[0], lambda n, d: [(n, b"not flac at all" if n == f"{victim}.flac"
                                              else d)])
    reader = ShardReader(tmp_path)
    keys = [s.key for s in reader]
    assert victim not in keys and len(keys) == 3
    assert reader.errors == {"bad_audio": 1}


def test_reader_takes_fsspec_urls_and_brace_patterns(tmp_path, speech_clips):
    write_clips(tmp_path, speech_clips, max_count=3)
    pattern = f"file://{tmp_path}/demo-train-{{000000..000002}}.tar"
    assert len(expand_urls(pattern)) == 3
    assert len(list(ShardReader(pattern))) == len(speech_clips)
    assert len(list(ShardReader(f"{tmp_path}/demo-train-*.tar"))) == len(speech_clips)


def test_plain_webdataset_reads_our_shards(tmp_path, speech_clips):
    import io

    import soundfile as sf
    import webdataset as wds

    write_clips(tmp_path, speech_clips)
    urls = expand_urls(tmp_path)
    rows = list(wds.WebDataset(urls, shardshuffle=False))
    assert len(rows) == len(speech_clips)
    audio, sr = sf.read(io.BytesIO(rows[0]["flac"]), dtype="float32")
    assert sr == 16000 and np.array_equal(audio, speech_clips[0][1])
    assert json.loads(rows[0]["json"])["text"] == speech_clips[0][0]


def test_lhotse_reads_our_shards_and_writes_them_back(tmp_path, speech_clips):
    from funfactory.shards.interop import from_cutset, to_cutset

    write_clips(tmp_path / "ours", speech_clips)
    cuts = to_cutset(tmp_path / "ours").to_eager()
    assert len(cuts) == len(speech_clips)
    cut = cuts[0]
    assert cut.sampling_rate == 16000 and cut.supervisions[0].text == speech_clips[0][0]
    assert np.array_equal(cut.load_audio()[0], speech_clips[0][1])
    from_cutset(cuts, tmp_path / "back", "demo")
    back = list(ShardReader(tmp_path / "back"))
    assert [s.meta["text"] for s in back] == [t for t, _ in speech_clips]
    assert np.array_equal(back[3].audio, speech_clips[3][1])


def test_lhotse_cuts_at_other_rates_are_resampled_into_shards(tmp_path, speech_clips):
    import soundfile as sf
    import soxr
    from lhotse import CutSet, Recording, SupervisionSegment

    text, audio = speech_clips[1]
    wav = tmp_path / "native.wav"
    sf.write(wav, soxr.resample(audio, 16000, 22050), 22050)
    rec = Recording.from_file(wav, recording_id="native")
    cut = rec.to_cut()
    cut.supervisions = [SupervisionSegment("native-0", "native", 0, rec.duration, text=text,
                                           language="en")]
    from funfactory.shards.interop import from_cutset
    from_cutset(CutSet.from_cuts([cut]), tmp_path / "out", "lhotse")
    sample = next(iter(ShardReader(tmp_path / "out")))
    assert sample.sample_rate == 16000 and sample.meta["text"] == text
    assert abs(len(sample.audio) - len(audio)) < 200


def test_hugging_face_datasets_loads_our_shards(tmp_path, speech_clips):
    import io

    import datasets
    import soundfile as sf

    write_clips(tmp_path, speech_clips, max_count=4)
    from funfactory.shards.interop import hf_features

    ds = datasets.load_dataset("webdataset", data_files={"train": expand_urls(tmp_path)},
                               split="train", cache_dir=str(tmp_path / "hf"),
                               features=hf_features())
    assert ds.num_rows == len(speech_clips)
    row = ds[2]
    audio, sr = sf.read(io.BytesIO(row["flac"]), dtype="float32")
    assert row["json"]["text"] == speech_clips[2][0] and sr == 16000
    assert np.array_equal(audio, speech_clips[2][1])


def test_stats_count_hours_and_draw_a_histogram(tmp_path, speech_clips):
    from funfactory.shards.stats import compute_stats, duration_histogram

    write_clips(tmp_path, speech_clips)
    stats = compute_stats(tmp_path)
    expected_hours = sum(len(a) for _, a in speech_clips) / 16000 / 3600
    assert stats.samples == len(speech_clips)
    assert stats.hours == pytest.approx(expected_hours, rel=1e-3)
    assert stats.by["task"]["asr"][0] == len(speech_clips)
    png = duration_histogram(stats, tmp_path / "d.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inspect_finds_a_sample_by_key(tmp_path, speech_clips):
    from funfactory.shards.inspect import find_sample

    write_clips(tmp_path, speech_clips, max_count=2)
    key = read_index(tmp_path).column("key")[5].as_py()
    meta, audio, row = find_sample(tmp_path, key)
    assert meta["key"] == key and np.array_equal(audio, speech_clips[5][1])


def test_merge_refuses_a_fragment_that_does_not_describe_its_tar(tmp_path, speech_clips):
    """A crash between a shard's tar and its index fragment leaves the old fragment beside a new
    tar: the merge must not index bytes that are not there."""
    import pytest

    from funfactory.errors import FunfactoryError
    from funfactory.shards.index import merge_index

    write_clips(tmp_path / "a", speech_clips[:4], max_count=2)
    write_clips(tmp_path / "b", speech_clips[4:], max_count=2)
    shard = "demo-train-000000.tar"
    # the crash: tar 000000 replaced by another run's, its fragment not rewritten yet
    (tmp_path / "a" / shard).write_bytes((tmp_path / "b" / shard).read_bytes())
    with pytest.raises(FunfactoryError, match="demo-train-000000.tar"):
        merge_index(tmp_path / "a", "demo", "train")
