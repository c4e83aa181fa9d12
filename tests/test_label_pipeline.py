"""The label pipeline end to end: TTS speech with known text and planted faults in,
shards + rejects + report out; resume after a kill; DirectRunner vs DaskRunner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from funfactory.config import load_config
from funfactory.eval.scoring import wer
from funfactory.pipelines.common.runner import beam_options
from funfactory.pipelines.common.units import done_units
from funfactory.pipelines.label.config import LabelConfig
from funfactory.pipelines.label.pipeline import run_label
from funfactory.shards.reader import ShardReader
from funfactory.shards.keys import source_id
from tests.label_audio import SENTENCES, write_faults, write_hostile_folder, write_speech_corpus

# one system, for speed: its labels of clean TTS are estimated at about 8 %, over the default
# vote.max_estimated_wer (fitted for voted labels), so the keep threshold is loosened here
FAST = ["asr.backends=[{kind: whisper-tiny-en}]", "asr.batch_size=4", "vote.max_estimated_wer=0.15"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    import torch
    torch.set_num_threads(1)


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}


def samples(out: Path) -> list[dict]:
    return [sample.meta for sample in ShardReader(out, decode=False)]


def test_speech_and_planted_faults_each_end_where_they_should(tmp_path):
    manifest = write_speech_corpus(tmp_path / "in", [SENTENCES[:2], SENTENCES[2:4]])
    faults = write_faults(tmp_path / "in" / "faults", long_hours=1 / 6)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows += [{"uri": str(p), "language": "en"} for p in faults.values()]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    report = run_label(load_config(LabelConfig, None, FAST), manifest, out,
                       options=beam_options())

    metas = samples(out)
    rejects = pq.read_table(out / "_reports" / "label-rejects.parquet").to_pylist()
    assert report.unaccounted == [] and report.units == len(rows)
    by_uri = {}
    for meta in metas:
        by_uri.setdefault(meta["source"]["uri"], []).append(meta)
    file_rejects = {r["uri"]: r["reason"] for r in rejects if r["key"] is None}
    uri = {name: p.resolve().as_uri() for name, p in faults.items()}
    assert file_rejects[uri["zero_length"]] == "empty_file"
    assert file_rejects[uri["not_audio"]] == "not_audio"
    assert file_rejects[uri["corrupt"]] == "corrupt_file"
    assert file_rejects[uri["noise"]] == "no_speech"
    # 8 kHz stereo: resampled, mixed down and kept; the long file: its one sentence found
    assert wer([SENTENCES[3]], [by_uri[uri["stereo_8k"]][0]["text"]]).rate < 0.25
    long_sample = by_uri[uri["long"]][0]
    assert long_sample["source"]["offset"] > 500
    assert wer([SENTENCES[4]], [long_sample["text"]]).rate < 0.25
    # every input file is in a shard or in the rejects table
    inputs = {source_id(p.resolve().as_uri()) for p in faults.values()} | {
        source_id((manifest.parent / r["uri"]).resolve().as_uri()) for r in rows[:2]}
    assert {m["source"]["id"] for m in metas} | {r["unit"] for r in rejects} == inputs
    assert json.loads((out / "_reports" / "label-report.json").read_text())["units"] == len(inputs)
    # labels agree with the known text of the TTS speech
    speech = [m for m in metas if m.get("reference")]
    assert len(speech) >= 4
    score = wer([m["reference"] for m in speech], [m["text"] for m in speech])
    assert score.rate < 0.15, score.summary()
    for meta in speech:
        assert meta["labels"]["chosen"] == "whisper-tiny-en"
        assert meta["labels"]["whisper-tiny-en"]["text"]
        assert meta["raw_text"] and meta["lineage"]["pipeline"] == "label"
    assert (out / "_reports" / "label-durations.png").stat().st_size > 1000
    assert report.rejects == len(rejects) and report.samples == len(metas)
    assert report.stage_seconds["asr"] > 0 and report.stage_seconds["vad"] > 0
    # the job's reliability estimate: a sample pass over every segment of this small job; one
    # English system has nothing to agree with, so it keeps its calibration prior
    [figures] = report.extra["reliability"]["en"].values()
    assert figures["estimated_error"] == figures["prior_error"] and figures["slots"] == 0
    assert report.extra["reliability_source"]["segments"] >= len(speech)

    # a rerun of a finished job labels nothing again and writes the same shards
    before = shard_bytes(out)
    again = run_label(load_config(LabelConfig, None, FAST), manifest, out, options=beam_options())
    assert shard_bytes(out) == before and again.samples == report.samples


def test_every_entry_of_a_hostile_folder_is_accounted_for_by_its_own_name(tmp_path):
    entries = write_hostile_folder(tmp_path / "in", tmp_path / "private")
    out = tmp_path / "out"
    report = run_label(load_config(LabelConfig, None, FAST + ["ingest.language=en"]),
                       tmp_path / "in", out,
                       options=beam_options())
    assert report.unaccounted == []
    rejects = pq.read_table(out / "_reports" / "label-rejects.parquet").to_pylist()
    file_rejects = {r["uri"]: r["reason"] for r in rejects if r["key"] is None}
    sample_uris = {m["source"]["uri"] for m in samples(out)}
    ended = {}
    for name, (path, _) in entries.items():
        uri = path.absolute().as_uri()
        ended[name] = ("shards" if uri in sample_uris else file_rejects.get(uri, "ignored"))
    assert ended == {name: end for name, (_, end) in entries.items()}
    # nothing is reported under a link's target, and the private file was not read
    named = sample_uris | {r["uri"] for r in rejects}
    assert named <= {path.absolute().as_uri() for path, _ in entries.values()}
    assert not any("private" in uri for uri in named)
    assert report.units == sum(end != "ignored" for _, end in entries.values())


def _run_cli(manifest: Path, out: Path, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "funfactory.cli", "pipeline", "label", "run", str(manifest),
           str(out)]
    for item in FAST + extra:
        cmd += ["--set", item]
    # the same thread settings as this process: ctranslate2's scores move in the 3rd decimal
    # when OMP_NUM_THREADS changes, which would make the shards differ in label figures
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


# two systems, and a reliability sample smaller than the job: some segments are labelled from
# the sample pass's hypotheses, the others by the job's own ASR step
SAMPLED = ["asr.backends=[{kind: whisper-tiny-en}, {kind: pocketsphinx}]",
           "vote.reliability_sample_segments=3"]


@pytest.mark.slow
def test_killed_and_resumed_run_equals_clean_run(tmp_path):
    groups = [SENTENCES[i:i + 2] for i in range(0, 6, 2)] + [SENTENCES[4:] + SENTENCES[:1]]
    manifest = write_speech_corpus(tmp_path / "in", groups)
    clean = tmp_path / "clean"
    run_label(load_config(LabelConfig, None, FAST + SAMPLED), manifest, clean,
              options=beam_options())

    resumed = tmp_path / "resumed"
    proc = _run_cli(manifest, resumed, SAMPLED)
    deadline = time.monotonic() + 300
    while len(done_units(resumed / "_work")) < 1 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = done_units(resumed / "_work")
    assert 1 <= len(finished) < len(groups) and not list(resumed.glob("*.tar"))

    proc = _run_cli(manifest, resumed, SAMPLED)
    output = proc.communicate(timeout=600)[0].decode()
    assert proc.returncode == 0, output
    assert f"{len(finished)} already done" in output
    assert "[label] reliability from" not in output  # read back, not sampled again
    saved = [json.loads((out / "_reports" / "label-reliability.json").read_text())
             for out in (clean, resumed)]
    assert saved[0]["reliability"] == saved[1]["reliability"]
    assert len(saved[0]["hypotheses"]) >= 3
    for key, known in saved[0]["hypotheses"].items():
        assert known["labels"] == saved[1]["hypotheses"][key]["labels"]
    ours, theirs = samples(resumed), samples(clean)
    assert [(m["key"], m["text"]) for m in ours] == [(m["key"], m["text"]) for m in theirs]
    assert shard_bytes(resumed) == shard_bytes(clean) != {}
    assert not list((resumed / "_work").glob("**/*.partial"))


@pytest.mark.slow
def test_dask_runner_gives_the_same_output_as_direct_runner(tmp_path):
    from distributed import LocalCluster
    manifest = write_speech_corpus(tmp_path / "in", [SENTENCES[:2], SENTENCES[2:4]])
    faults = write_faults(tmp_path / "in" / "faults", long_hours=0.01)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows += [{"uri": str(faults[n]), "language": "en"} for n in ("corrupt", "noise", "stereo_8k")]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(LabelConfig, None, FAST)
    direct = run_label(cfg, manifest, tmp_path / "direct", options=beam_options())
    with LocalCluster(processes=False, n_workers=1, threads_per_worker=2,
                      dashboard_address=None) as cluster:
        dask = run_label(cfg, manifest, tmp_path / "dask", options=beam_options(
            runner="DaskRunner", dask_address=cluster.scheduler_address))
    assert shard_bytes(tmp_path / "dask") == shard_bytes(tmp_path / "direct") != {}
    reject_files = [tmp_path / d / "_reports" / "label-rejects.parquet" for d in ("direct", "dask")]
    assert pq.read_table(reject_files[0]).equals(pq.read_table(reject_files[1]))
    assert dask.rejects_by_reason == direct.rejects_by_reason and dask.samples == direct.samples


@pytest.mark.slow
def test_three_hour_file_streams_in_bounded_memory(tmp_path):
    import tracemalloc

    from funfactory.pipelines.label.config import IngestConfig, VadConfig
    from funfactory.pipelines.label.ingest import list_sources
    from funfactory.pipelines.label.vad import SegmentSources
    write_faults(tmp_path, long_hours=3.0)
    source = next(s for s in list_sources(tmp_path, IngestConfig()) if s.path.endswith("long.wav"))
    dofn = SegmentSources(VadConfig())
    dofn.setup()
    tracemalloc.start()
    items = list(dofn.process(source.as_dict()))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20e6, f"peak {peak / 1e6:.1f} MB for 3 h (691 MB as float32)"
    assert items[-1][2]["seconds_in"] == pytest.approx(3 * 3600)
    assert [len(i[2]) for i in items if i[1] == "batch"] == [1]


@pytest.mark.slow
def test_three_systems_vote_keeps_every_hypothesis(tmp_path):
    manifest = write_speech_corpus(tmp_path / "in", [SENTENCES[:3], SENTENCES[3:]])
    out = tmp_path / "out"
    report = run_label(load_config(LabelConfig), manifest, out, options=beam_options())
    metas = samples(out)
    assert report.samples == len(metas) == 6
    systems = ("whisper-base", "whisper-tiny-en", "pocketsphinx")
    refs = [m["reference"] for m in metas]
    single = {s: wer(refs, [m["labels"][s]["text"] for m in metas]).rate for s in systems}
    chosen = wer(refs, [m["text"] for m in metas]).rate
    for meta in metas:
        assert set(systems) <= set(meta["labels"]) and meta["labels"]["chosen"] in systems
        assert meta["labels"]["agreement"]["metric"] == "wer"
    assert chosen <= min(single.values()) + 0.02, (chosen, single)


@pytest.mark.slow
def test_embedded_corpus_en_zh_and_code_switch(tmp_path):
    """The embedded default corpus (tiny): wav/flac/ogg at 22.05/24 kHz in en, zh and zh-en.
    English gets three systems, Chinese and code-switched speech Whisper base alone."""
    from funfactory.eval.scoring import score
    from funfactory.synth.corpus import default_corpus
    corpus = default_corpus("tiny")
    # every voted segment is kept here (no estimated-error threshold): this test is about which
    # systems cover which language; tests/test_label_vote.py covers the keep rule
    cfg = load_config(LabelConfig, None, ["vote.max_estimated_wer=1.0"])
    report = run_label(cfg, corpus.manifest_path, tmp_path / "out", options=beam_options())
    assert report.units == len(corpus.recordings()) and report.unaccounted == []
    metas = samples(tmp_path / "out")
    by_language: dict[str, list[dict]] = {}
    for meta in metas:
        by_language.setdefault(meta["language"], []).append(meta)
    assert set(by_language) == {"en", "zh", "zh-en"}, report.rejects_by_reason
    rates = {lang: score([m["reference"] for m in ms], [m["text"] for m in ms],
                         language=lang).rate for lang, ms in by_language.items()}
    # Whisper base alone on synthetic Mandarin (espeak, Kokoro) is weak: measured CER about 0.58
    # (zh) and MER about 0.64 (zh-en) here; no second Chinese system exists to vote it down
    assert rates["en"] < 0.2 and rates["zh"] < 0.75 and rates["zh-en"] < 0.8, rates
    for meta in by_language["zh"] + by_language["zh-en"]:
        assert set(meta["labels"]) >= {"whisper-base", "chosen"}
        assert "whisper-tiny-en" not in meta["labels"] and meta["labels"]["agreement"] is None
        assert 0.0 <= meta["labels"]["estimated_wer"] <= 1.0
    for meta in by_language["en"]:
        assert {"whisper-base", "whisper-tiny-en", "pocketsphinx"} <= set(meta["labels"])
