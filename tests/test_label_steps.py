"""The label pipeline's steps one by one, on real audio (TTS speech, silence, noise, faults)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from funfactory.errors import FunfactoryError
from funfactory.pipelines.common.rejects import read_rejects, reject_row, write_rejects
from funfactory.pipelines.common.sink import plan_shards
from funfactory.pipelines.common.units import WorkDir
from funfactory.pipelines.label.config import FilterConfig, IngestConfig, VadConfig
from funfactory.pipelines.label.filters import check, longest_repeat
from funfactory.pipelines.label.ingest import IngestError, list_sources, stream_audio
from funfactory.pipelines.label.vad import (FRAME, SegmentSources, Segmenter,
                                            StreamingProbabilities, load_sequence_model)
from funfactory.pipelines.label.vote import rover
from tests.label_audio import (SENTENCES, TTS_RATE, recording, speech, write_faults,
                               write_hostile_folder)

SEC = 16000 / FRAME  # VAD frames per second


def frames(pattern):
    """Probabilities from (seconds, p) pieces."""
    return np.concatenate([np.full(int(round(s * SEC)), p, np.float32) for s, p in pattern])


def spans(cfg, probs, total=None):
    seg = Segmenter(cfg)
    out = seg.feed(probs)
    out += seg.finish(total if total is not None else len(probs) * FRAME)
    return [(round(s.start / 16000, 2), round(s.end / 16000, 2)) for s in out]


def test_segmenter_merges_close_regions_and_pads_without_overlap():
    cfg = VadConfig(pad_seconds=0.2, max_merge_gap_seconds=1.0)
    probs = frames([(1, 0.0), (2, 0.9), (0.5, 0.0), (2, 0.9), (3, 0.0), (2, 0.9), (2, 0.0)])
    out = spans(cfg, probs)
    assert len(out) == 2  # the 0.5 s gap merges, the 3 s gap does not
    (s1, e1), (s2, e2) = out
    assert s1 == pytest.approx(0.8, abs=0.05) and e1 == pytest.approx(5.7, abs=0.05)
    assert s2 == pytest.approx(8.3, abs=0.05) and e1 <= s2


def test_segmenter_splits_long_speech_under_the_maximum():
    cfg = VadConfig(max_segment_seconds=10.0, pad_seconds=0.1)
    probs = frames([(0.5, 0.0), (25, 0.9), (0.5, 0.0)])
    probs[int(8 * SEC)] = 0.2  # a quiet frame inside the last 5 s of the first 10 s window
    out = spans(cfg, probs)
    assert all(e - s <= 10.0 + 1e-6 for s, e in out)
    assert out[0][1] == pytest.approx(8.0, abs=0.1)  # split at the quietest frame
    assert sum(e - s for s, e in out) == pytest.approx(25.2, abs=0.3)
    assert all(a[1] <= b[0] for a, b in zip(out, out[1:]))


def test_segmenter_long_form_allows_five_minutes():
    cfg = VadConfig(long_form=True, long_form_max_seconds=300.0)
    out = spans(cfg, frames([(1, 0.0), (120, 0.9), (1, 0.0)]))
    assert len(out) == 1 and out[0][1] - out[0][0] == pytest.approx(120.4, abs=0.1)


def test_streaming_probabilities_match_silero_called_directly():
    from silero_vad import load_silero_vad
    audio, _ = recording(SENTENCES[:2])
    audio = soxr.resample(audio, TTS_RATE, 16000).astype(np.float32)
    direct = load_silero_vad(sequence=True).audio_forward(audio)

    def streamed(skip):
        stream = StreamingProbabilities(load_sequence_model(), skip_digital_silence=skip)
        pieces = [stream.feed(audio[i:i + 7777]) for i in range(0, len(audio), 7777)]
        return np.concatenate(pieces + [stream.feed(np.zeros(0, np.float32), last=True)])

    exact = streamed(skip=False)
    assert len(exact) == len(direct)
    assert np.abs(exact - direct).max() < 0.05
    # skipping digital silence (state reset) moves speech onsets by at most a frame or two
    skipped = streamed(skip=True)
    ours, theirs = spans(VadConfig(), skipped), spans(VadConfig(), direct)
    assert len(ours) == len(theirs) == 2
    assert np.abs(np.array(ours) - np.array(theirs)).max() <= 0.1


def test_ingest_classifies_planted_faults(tmp_path):
    faults = write_faults(tmp_path, long_hours=0.02)
    reasons = {}
    for name in ("zero_length", "not_audio", "corrupt"):
        source = next(s for s in list_sources(tmp_path, IngestConfig())
                      if s.path == str(faults[name].resolve()))
        with pytest.raises(IngestError) as e:
            list(stream_audio(source))
        reasons[name] = e.value.reason
    assert reasons == {"zero_length": "empty_file", "not_audio": "not_audio",
                       "corrupt": "corrupt_file"}
    stereo = next(s for s in list_sources(tmp_path, IngestConfig())
                  if s.path.endswith("stereo8k.wav"))
    windows = list(stream_audio(stereo, window_seconds=0.7))
    audio = np.concatenate([w.audio for w in windows])
    expected = sf.info(stereo.path).frames * 2
    assert abs(len(audio) - expected) <= 2 and audio.ndim == 1
    assert [w.offset for w in windows] == sorted(w.offset for w in windows)


def test_external_links_are_followed_only_when_asked(tmp_path):
    entries = write_hostile_folder(tmp_path / "in", tmp_path / "private")

    def listed(follow):
        return {Path(s.path).relative_to(tmp_path / "in").as_posix(): s for s in list_sources(
            tmp_path / "in", IngestConfig(follow_external_links=follow))}

    refused = listed(False)
    assert refused["outside.wav"].refused[0] == refused["more"].refused[0] == "external_link"
    assert "more/private.wav" not in refused
    followed = listed(True)
    # the outside folder is searched through its link, and its file, which the file link
    # reaches too, is labelled once, under the link's path
    inside = followed["more/private.wav"]
    assert not inside.refused and inside.uri == (tmp_path / "in/more/private.wav").as_uri()
    assert followed["outside.wav"].refused[0] == "duplicate_link" and "more" not in followed
    audio = np.concatenate([w.audio for w in stream_audio(inside)])
    assert len(audio) == pytest.approx(len(speech(SENTENCES[5])) * 16000 / TTS_RATE, abs=2)
    assert entries["outside.wav"][0].is_symlink()


def test_truncated_wav_keeps_what_decoded_and_then_fails(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, speech(SENTENCES[0]), TTS_RATE, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:44 + 2 * TTS_RATE])  # the header and 1 s of samples
    [source] = list_sources(tmp_path, IngestConfig())
    decoded = []
    with pytest.raises(IngestError) as e:
        for window in stream_audio(source, window_seconds=0.3):
            decoded.append(window.audio)
    assert e.value.reason == "decode_error" and "truncated WAV" in e.value.detail
    assert e.value.at_seconds == pytest.approx(1.0)
    assert sum(map(len, decoded)) == pytest.approx(16000, abs=2)


def test_long_file_streams_in_bounded_memory(tmp_path):
    """15 minutes of 16 kHz audio (57.6 MB as float32) through ingest + VAD: the traced peak stays
    far below it, and the one sentence near the end is found at the right offset."""
    faults = write_faults(tmp_path, long_hours=0.25)
    source = next(s for s in list_sources(tmp_path, IngestConfig()) if s.path.endswith("long.wav"))
    dofn = SegmentSources(VadConfig(), window_seconds=30.0)
    dofn.setup()
    tracemalloc.start()
    items = list(dofn.process(source.as_dict()))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20e6, f"peak {peak / 1e6:.1f} MB"
    batches = [i for i in items if i[1] == "batch"]
    assert len(batches) == 1 and len(batches[0][2]) == 1
    segment = batches[0][2][0]
    sentence = len(speech(SENTENCES[4])) / TTS_RATE
    assert segment["offset"] == pytest.approx(900 - 10 - sentence - 0.2, abs=0.4)
    assert faults["long"].stat().st_size > 28e6


def test_noise_only_file_is_a_no_speech_reject(tmp_path):
    faults = write_faults(tmp_path, long_hours=0.01)
    source = next(s for s in list_sources(tmp_path, IngestConfig()) if s.path.endswith("noise.wav"))
    dofn = SegmentSources(VadConfig())
    dofn.setup()
    items = list(dofn.process(source.as_dict()))
    assert [(k, p.get("reason")) for _, k, p in items][:1] == [("reject", "no_speech")]
    assert items[-1][1] == "unit" and items[-1][2]["seconds_in"] == pytest.approx(8.0)
    assert faults["noise"].exists()


def test_rover_votes_word_by_word():
    hyps = {"a": "the cat sat on the mat", "b": "the cat sat on a mat", "c": "a cat sat on the hat"}
    assert rover(hyps, "a", "en") == "the cat sat on the mat"
    hyps = {"a": "the bat sat on the mat", "b": "the cat sat on the mat", "c": "the cat sat on mat"}
    assert rover(hyps, "a", "en") == "the cat sat on the mat"


def test_filters_catch_each_kind_of_bad_label():
    cfg = FilterConfig()
    assert check("The report is due on Friday.", 2.5, "en", cfg, 30) is None
    assert check("...", 2.0, "en", cfg, 30)[0] == "empty_text"
    assert check("Hello there.", 0.3, "en", cfg, 30)[0] == "duration"
    assert check("我们明天开会", 2.0, "en", cfg, 30)[0] == "language_mismatch"
    assert check("我们明天开会讨论Kubernetes", 3.0, "zh-en", cfg, 30) is None
    assert check("Thanks for watching!", 2.0, "en", cfg, 30)[0] == "hallucination_phrase"
    assert check("go go go go go go now", 3.0, "en", cfg, 30)[0] == "repetition"
    assert check("Yes.", 20.0, "en", cfg, 30)[0] == "chars_per_second"
    assert longest_repeat("a b c a b c a b c d".split()) == (3, "a b c")


def test_rejects_table_is_sorted_and_typed(tmp_path):
    rows = [reject_row(unit="u2", stage="vad", reason="no_speech", uri="file:///b", offset=0.0,
                       duration=8.0),
            reject_row(unit="u1", key="u1-seg00003", stage="vote", reason="low_agreement",
                       uri="file:///a", offset=12.5, duration=3.0),
            reject_row(unit="u1", stage="ingest", reason="corrupt_file", uri="file:///a")]
    back = read_rejects(write_rejects(rows, tmp_path / "r.parquet"))
    assert [(r["unit"], r["reason"]) for r in back] == [
        ("u1", "corrupt_file"), ("u1", "low_agreement"), ("u2", "no_speech")]
    assert back[0]["offset"] is None and back[1]["duration"] == 3.0


def test_shard_plan_respects_caps_and_order_and_only_finalises_what_cannot_change():
    manifests = {u: {"unit": u, "samples": [{"key": f"{u}-seg{i:05d}", "duration": 1.0,
                                             "json_bytes": 700, "flac_bytes": 30000}
                                            for i in range(n)]}
                 for u, n in (("srcb", 3), ("srca", 4))}
    plans, complete = plan_shards(manifests, sorted(manifests), max_count=3)
    keys = [k for p in plans for k in p.keys]
    assert complete and [p.index for p in plans] == [0, 1, 2]
    assert keys == sorted(keys) and len(keys) == 7
    assert all(len(p.keys) <= 3 for p in plans)
    small, _ = plan_shards(manifests, sorted(manifests), max_bytes=100_000)
    assert all(len(p.keys) <= 3 for p in small)
    # srcb not committed yet: only the shard that closed inside srca is final, and it is the
    # same shard the complete plan starts with
    partial, complete = plan_shards({"srca": manifests["srca"]}, sorted(manifests), max_count=3)
    assert not complete and [p.keys for p in partial] == [plans[0].keys]
    none, complete = plan_shards({"srcb": manifests["srcb"]}, sorted(manifests), max_count=3)
    assert not complete and none == []


def test_work_dir_refuses_another_config(tmp_path):
    work = WorkDir(tmp_path / "w")
    work.pin("a" * 64)
    work.pin("a" * 64)
    with pytest.raises(FunfactoryError, match="--restart"):
        work.pin("b" * 64)
    (tmp_path / "w" / "parts" / "x.json").write_text("{}")
    work.pin("b" * 64, restart=True)
    assert not (tmp_path / "w" / "parts" / "x.json").exists()


def test_lhotse_cuts_become_sources_with_offsets_and_references(tmp_path):
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment
    audio, utterances = recording(SENTENCES[:2])
    path = tmp_path / "talk.wav"
    sf.write(path, audio, TTS_RATE)
    rec = Recording.from_file(path)
    RecordingSet.from_recordings([rec]).to_file(tmp_path / "recordings.jsonl.gz")
    (s0, e0, t0), (s1, e1, t1) = utterances
    cuts = CutSet.from_cuts([
        rec.to_cut().truncate(offset=s1 - 0.3, duration=e1 - s1 + 0.6).with_id("second")])
    cut = cuts[0]
    cut.supervisions = [SupervisionSegment("sup", rec.id, start=0.3, duration=e1 - s1, text=t1,
                                           language="English")]
    CutSet.from_cuts([cut]).to_file(tmp_path / "cuts.jsonl.gz")

    whole = list_sources(tmp_path / "recordings.jsonl.gz", IngestConfig(format="lhotse"))
    assert len(whole) == 1 and whole[0].offset == 0 and whole[0].duration is None
    [source] = list_sources(tmp_path / "cuts.jsonl.gz", IngestConfig(format="lhotse"))
    assert source.language == "en" and source.reference == t1
    assert source.offset == pytest.approx(s1 - 0.3) and source.id != whole[0].id
    windows = list(stream_audio(source, window_seconds=1.0))
    assert windows[0].offset == pytest.approx(s1 - 0.3, abs=1e-3)
    total = sum(len(w.audio) for w in windows) / 16000
    assert total == pytest.approx(e1 - s1 + 0.6, abs=0.01)


def test_cli_options_after_the_paths_are_ours_and_after_dashes_go_to_beam():
    import argparse

    from funfactory.pipelines import cli as pipeline_cli
    from funfactory.pipelines.common.runner import (beam_args, reparse_trailing_options,
                                                    runner_options_from_args)
    parser = argparse.ArgumentParser()
    pipeline_cli.register(parser.add_subparsers())
    ns = parser.parse_args(["pipeline", "label", "run", "--runner", "DaskRunner", "IN", "OUT",
                            "--set", "vote.method=rover", "--dask_address", "tcp://h:1", "--",
                            "--temp_location=/tmp/x"])
    with pytest.raises(FunfactoryError, match="would go to Beam"):
        runner_options_from_args(ns)
    ns = reparse_trailing_options(ns, ns.job_parser, ("input", "out"))
    assert (ns.input, ns.out, ns.set) == ("IN", "OUT", ["vote.method=rover"])
    assert ns.runner == "DaskRunner" and ns.beam_args == ["--temp_location=/tmp/x"]
    args = beam_args(runner=ns.runner, dask_address=ns.dask_address, extra=ns.beam_args)
    assert args[0] == "--runner=apache_beam.runners.dask.dask_runner.DaskRunner"
    assert "--dask_client_address=tcp://h:1" in args and args[-1] == "--temp_location=/tmp/x"


def test_units_are_reshuffled_for_every_runner_but_one_in_process_worker():
    import apache_beam as beam

    from funfactory.pipelines.common.executor import pending_inputs
    from funfactory.pipelines.common.runner import beam_options

    def labels(options):
        pipeline = beam.Pipeline(options=options)
        pending_inputs({"a": 1, "b": 2})(pipeline, ["a", "b"])
        return {t.full_label for t in pipeline.transforms_stack[0].parts}

    assert labels(beam_options()) == {"Units"}
    for options in (beam_options(direct_num_workers=2, direct_running_mode="multi_threading"),
                    beam_options(direct_num_workers=2, direct_running_mode="multi_processing"),
                    beam_options(runner="DaskRunner")):
        assert labels(options) == {"Units", "Spread"}


@pytest.mark.parametrize("extension,fmt,subtype", [("mp3", "MP3", "MPEG_LAYER_III"),
                                                   ("opus", "OGG", "OPUS"),
                                                   ("ogg", "OGG", "VORBIS")])
def test_compressed_formats_decode_to_16k_mono(tmp_path, extension, fmt, subtype):
    audio = soxr.resample(speech(SENTENCES[5]), TTS_RATE, 48000).astype(np.float32)
    path = tmp_path / f"clip.{extension}"
    sf.write(path, audio, 48000, format=fmt, subtype=subtype)
    [source] = list_sources(tmp_path, IngestConfig())
    out = np.concatenate([w.audio for w in stream_audio(source, window_seconds=1.0)])
    assert abs(len(out) / 16000 - len(audio) / 48000) < 0.1  # codec padding only
    assert float(np.sqrt(np.mean(out ** 2))) > 0.01
