"""The embedded default corpus: deterministic, resumable, exactly annotated, leak-free noise splits."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from funfactory.errors import FunfactoryError, MissingAssetError
from funfactory.synth.corpus import (GAP_SECONDS, STATE_DIR, CorpusInfo, build_corpus, build_recording,
                                     load_sentences, plan_corpus)
from funfactory.synth.noise import NOISE_SOURCES, NoiseSource, build_real_noise, locate_sources
from tests.conftest_synth import tiny_corpus  # noqa: F401

FAST_VOICES = {"hibari-en", "piper-joe-en", "espeak-cmn", "espeak-cmn-f", "espeak-en"}


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) if audio.size else 0.0


def _fast_plans(seed: int):
    return [plan for plan in plan_corpus(seed, "tiny") if {u.voice for u in plan.utterances} <= FAST_VOICES]


def test_manifest_describes_every_file_exactly(tiny_corpus):
    rows = tiny_corpus.recordings()
    assert {row["language"] for row in rows} == {"en", "zh", "zh-en"}
    assert {row["format"] for row in rows} == {"wav", "flac", "ogg"}
    assert {row["sample_rate"] for row in rows} == {22050, 24000}
    for row in rows:
        info = sf.info(tiny_corpus.path(row["uri"]))
        assert info.samplerate == row["sample_rate"] and info.channels == row["channels"]
        assert abs(info.frames / info.samplerate - row["duration"]) < 1.5 / info.samplerate
        assert row["text"] == (" " if row["language"] == "en" else "").join(u["text"] for u in row["utterances"])
        assert all(u["language"] == row["language"] for u in row["utterances"])


def test_publication_dates_spread_over_three_years_with_one_missing(tiny_corpus):
    dates = [row["published_at"] for row in tiny_corpus.recordings()]
    assert dates.count(None) == 1
    parsed = sorted(dt.date.fromisoformat(date) for date in dates if date)
    assert parsed[0].year == 2024 and parsed[-1].year == 2026
    assert len(set(parsed)) == len(parsed)


def test_utterances_are_speech_and_gaps_are_silence(tiny_corpus):
    for row in tiny_corpus.recordings():
        audio, sample_rate = sf.read(tiny_corpus.path(row["uri"]), dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        spans = row["utterances"]
        edges = [0.0] + [bound for span in spans for bound in (span["start"], span["end"])] + [len(audio) / sample_rate]
        margin = 0.05  # lossy Ogg smears a few ms across a boundary
        for start, end in zip(edges[0::2], edges[1::2]):
            gap = audio[int((start + margin) * sample_rate): int((end - margin) * sample_rate)]
            assert _rms(gap) < 0.003, (row["id"], start, end, _rms(gap))
        for span in spans:
            assert 0.0 <= span["start"] < span["end"] <= row["duration"]
            speech = audio[int(span["start"] * sample_rate): int(span["end"] * sample_rate)]
            assert _rms(speech) > 0.02, (row["id"], span)
        for before, after in zip(spans, spans[1:]):
            assert GAP_SECONDS[0] - 1e-3 <= after["start"] - before["end"] <= GAP_SECONDS[1] + 1e-3


def test_sentence_pools_are_large_and_cover_the_topics():
    pools = {language: load_sentences(language) for language in ("en", "zh", "zh-en")}
    assert sum(len(set(pool)) for pool in pools.values()) >= 300
    assert any("三点半" in sentence for sentence in pools["zh"])
    assert any("二零二五年" in sentence for sentence in pools["zh"])
    mixed = " ".join(pools["zh-en"])
    for term in ("Kubernetes", "GPU", "Python", "API", "Excel", "iPhone"):
        assert term in mixed
    # numbers are spoken forms (ITN has work to do); digits appear only inside names such as "Q3"
    assert not any(char.isdigit() for language in ("en", "zh") for sentence in pools[language] for char in sentence)
    assert not any(re.search(r"(?<![A-Za-z])\d", sentence) for sentence in pools["zh-en"])


def test_plans_depend_on_the_seed_only():
    assert plan_corpus(0, "tiny") == plan_corpus(0, "tiny")
    texts = lambda seed: [u.text for plan in plan_corpus(seed, "tiny") for u in plan.utterances]  # noqa: E731
    assert texts(0) != texts(1)
    with pytest.raises(FunfactoryError, match="unknown corpus scale"):
        plan_corpus(0, "huge")


def test_same_seed_rebuilds_identical_bytes_and_other_seed_differs(tiny_corpus, tmp_path):
    by_id = {row["id"]: row for row in tiny_corpus.recordings()}
    for plan in _fast_plans(0):
        row = build_recording(tmp_path, plan)
        assert row == by_id[plan.id]
        assert (tmp_path / plan.uri).read_bytes() == tiny_corpus.path(plan.uri).read_bytes(), plan.uri
    other = _fast_plans(1)[0]
    build_recording(tmp_path / "seed1", other)
    assert (tmp_path / "seed1" / other.uri).read_bytes() != tiny_corpus.path(other.uri.replace("ff1-", "ff0-")).read_bytes()


def test_rerun_reuses_finished_files_and_redoes_stale_ones(tiny_corpus, tmp_path):
    copy = tmp_path / "corpus"
    shutil.copytree(tiny_corpus.root, copy, copy_function=shutil.copy2)
    audio_files = sorted((copy / "audio").iterdir()) + sorted((copy / "noise").glob("*.flac"))
    before = {path: path.stat().st_mtime_ns for path in audio_files}
    stale = _fast_plans(0)[0]
    record = copy / STATE_DIR / f"{stale.id}.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "plan_sha256": "from-an-older-generator"}))
    info = build_corpus(copy, seed=0, scale="tiny")
    changed = {path.name for path in audio_files if path.stat().st_mtime_ns != before[path]}
    assert changed == {Path(stale.uri).name}
    assert (copy / "manifest.jsonl").read_bytes() == tiny_corpus.manifest_path.read_bytes()
    assert (copy / stale.uri).read_bytes() == tiny_corpus.path(stale.uri).read_bytes()
    assert info.counts == tiny_corpus.counts


def test_noise_is_real_16k_and_split_by_source_file(tiny_corpus):
    clips = tiny_corpus.noise()
    assert {clip["category"] for clip in clips} == {"ambient", "crowd", "traffic", "babble"}
    train = {clip["original_path"] for clip in tiny_corpus.noise("train")}
    test = {clip["original_path"] for clip in tiny_corpus.noise("test")}
    assert train and test and not train & test
    for category in ("ambient", "crowd", "traffic", "babble"):
        assert {clip["split"] for clip in clips if clip["category"] == category} == {"train", "test"}
    for clip in clips:
        audio, sample_rate = sf.read(tiny_corpus.path(clip["uri"]), dtype="float32", always_2d=True)
        assert sample_rate == 16000 and audio.shape[1] == 1
        assert abs(len(audio) / sample_rate - clip["duration"]) < 1e-3
        assert _rms(audio) > 1e-3, clip["id"]
    assert len(tiny_corpus.rirs()) == 2
    for rir in tiny_corpus.rirs():
        response, sample_rate = sf.read(tiny_corpus.path(rir["uri"]), dtype="float32")
        assert sample_rate == 16000 and 0.05 < np.abs(response).max() <= 1.0


def test_split_is_the_same_whatever_the_corpus_seed(tmp_path):
    first = build_real_noise(tmp_path / "a")
    assert [(c["id"], c["split"]) for c in first] == [(c["id"], c["split"]) for c in build_real_noise(tmp_path / "a")]


def test_missing_noise_package_names_apt_get_and_the_escape_hatch(tmp_path):
    absent = NoiseSource("funfactory-no-such-noise-data", "ambient", ("usr/share/no/such/rain.ogg",))
    with pytest.raises(MissingAssetError, match="apt-get install funfactory-no-such-noise-data") as error:
        locate_sources(absent)
    assert "noise_dirs" in str(error.value)
    own = tmp_path / "my-noise"
    own.mkdir()
    (own / "rain.ogg").write_bytes(b"")
    assert locate_sources(absent, [own]) == [own / "rain.ogg"]
    city = NOISE_SOURCES[0]
    shutil.copy(Path("/") / city.relative_paths[0], own / Path(city.relative_paths[0]).name)
    assert locate_sources(city, [own]) == [own / "city.ogg"]


def test_corpus_info_loads_and_rejects_unbuilt_folders(tiny_corpus, tmp_path):
    loaded = CorpusInfo.load(tiny_corpus.root)
    assert loaded.counts["recordings"] == len(tiny_corpus.recordings()) and loaded.scale == "tiny"
    assert 60 <= loaded.hours["speech"] * 3600 <= 90
    with pytest.raises(FunfactoryError, match="not a built corpus"):
        CorpusInfo.load(tmp_path)


@pytest.mark.slow
def test_full_tiny_rebuild_is_byte_identical(tiny_corpus, tmp_path):
    build_corpus(tmp_path, seed=0, scale="tiny")
    for path in sorted(tiny_corpus.root.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            assert (tmp_path / path.relative_to(tiny_corpus.root)).read_bytes() == path.read_bytes(), path


@pytest.mark.slow
def test_concurrent_first_calls_build_once(tmp_path):
    code = ("import sys; from funfactory.synth.corpus import default_corpus; "
            "print(default_corpus('tiny', seed=7).root)")
    env = {**os.environ, "FUNFACTORY_CACHE": str(tmp_path)}
    workers = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    roots = {worker.communicate(timeout=600)[0].strip() for worker in workers}
    assert all(worker.returncode == 0 for worker in workers)
    assert len(roots) == 1
    root = Path(roots.pop())
    assert (root / "corpus.json").is_file()
    assert not list((tmp_path / "corpus").glob(".*.partial"))


def test_the_cli_copies_the_machine_cached_default_corpus(tmp_path, capsys):
    """`synth corpus --out` without noise folders is the corpus the pipelines read from the
    cache, file for file, so a demo builds it once."""
    from funfactory.cli import main
    from funfactory.synth.corpus import default_corpus

    cached = default_corpus("tiny", 0).root
    assert main(["synth", "corpus", "--out", str(tmp_path / "c"), "--scale", "tiny"]) == 0
    files = sorted(p.relative_to(cached) for p in cached.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(tmp_path / "c")
                                     for p in (tmp_path / "c").rglob("*") if p.is_file())
    assert all((cached / f).read_bytes() == (tmp_path / "c" / f).read_bytes() for f in files)
    assert CorpusInfo.load(tmp_path / "c").counts == CorpusInfo.load(cached).counts
