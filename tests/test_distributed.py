"""The factory on more than one machine, on small inputs (default suite): the label and augment
jobs with input, work folder and output on an S3-compatible store on localhost, on the
DaskRunner over a LocalCluster of 2 worker processes, give the same shards and index, byte for
byte, as a local DirectRunner run; a Dask worker killed mid-job and a driver killed mid-job both
end in the same shards with nothing lost, doubled or redone."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from funfactory.config import load_config
from funfactory.pipelines.common.runner import beam_options
from funfactory.shards import storage
from tests.s3_store import local_s3

# one system, for speed: its labels of clean TTS are estimated at about 8 %, over the default
# vote.max_estimated_wer (fitted for voted labels), so the keep threshold is loosened here
LABEL = ["asr.backends=[{kind: whisper-tiny-en}]", "asr.batch_size=4", "output.max_count=2",
         "ingest.language=en", "vote.max_estimated_wer=0.15"]
AUGMENT = ["seed=7", "noise_only.share=0.5", "max_count=3", "report_examples=0"]


@pytest.fixture(scope="module")
def s3():
    with local_s3() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def cluster(s3):
    from distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as c:
        yield c


def dask_options(cluster):
    return beam_options(runner="DaskRunner", dask_address=cluster.scheduler_address)


def digests(folder) -> dict[str, str]:
    """Shard and index name -> sha256, for a local folder or a URL."""
    found = storage.glob(storage.join(folder, "*.tar")) + \
        storage.glob(storage.join(folder, "*.parquet"))
    return {storage.name_of(p): hashlib.sha256(storage.read_bytes(p)).hexdigest()
            for p in found}


def upload(local: Path, url: str) -> None:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            storage.write_bytes(storage.join(url, str(path.relative_to(local))),
                                path.read_bytes())


def test_label_job_on_s3_and_dask_equals_a_local_direct_run(tmp_path, s3, cluster):
    from funfactory.pipelines.label.config import LabelConfig
    from funfactory.pipelines.label.pipeline import run_label
    from tests.label_audio import SENTENCES, write_speech_corpus

    write_speech_corpus(tmp_path / "in", [SENTENCES[:2], SENTENCES[2:3], SENTENCES[3:5]])
    (tmp_path / "in" / "manifest.jsonl").unlink()
    upload(tmp_path / "in", "s3://bucket/label/in")
    cfg = load_config(LabelConfig, None, LABEL)
    local = run_label(cfg, "s3://bucket/label/in", tmp_path / "local", options=beam_options())
    remote = run_label(cfg, "s3://bucket/label/in", "s3://bucket/label/out",
                       options=dask_options(cluster))
    assert local.samples >= 4 and local.unaccounted == [] == remote.unaccounted
    assert digests("s3://bucket/label/out") == digests(tmp_path / "local")
    assert len(digests(tmp_path / "local")) == local.shards + 1 >= 3
    assert storage.exists("s3://bucket/label/out/_reports/label-rejects.parquet")
    assert storage.read_json("s3://bucket/label/out/_reports/label-report.json")["samples"] \
        == local.samples
    # every part was packed and removed; the manifests stay as the resume markers
    assert storage.glob("s3://bucket/label/out/_work/parts/*.tar") == []
    assert len(storage.glob("s3://bucket/label/out/_work/parts/*.json")) == 3


def _augment_inputs(tmp_path, speech_clips, url):
    from tests.augment_helpers import write_labelled_shards
    write_labelled_shards(tmp_path / "shards", speech_clips[:6], max_count=1)
    upload(tmp_path / "shards", url)
    return url


def test_augment_job_on_s3_and_dask_equals_a_local_direct_run(tmp_path, s3, cluster,
                                                              speech_clips):
    from funfactory.pipelines.augment.config import AugmentConfig
    from funfactory.pipelines.augment.pipeline import run_augment

    inputs = _augment_inputs(tmp_path, speech_clips, "s3://bucket/augment/in")
    config = load_config(AugmentConfig, None, AUGMENT)
    local = run_augment(f"{inputs}/*.tar", tmp_path / "local", config, options=beam_options())
    remote = run_augment(f"{inputs}/*.tar", "s3://bucket/augment/out", config,
                         options=dask_options(cluster))
    assert local.run_report["unaccounted"] == [] == remote.run_report["unaccounted"]
    assert digests("s3://bucket/augment/out") == digests(tmp_path / "local") != {}
    assert storage.exists("s3://bucket/augment/out/_reports/augment-summary.json")


class KillOnce:
    """A deriver that kills its own worker process (SIGKILL) the first time it meets ``key``
    (a marker file records that it did), and otherwise augments as configured."""

    def __init__(self, inner, key: str, marker: str):
        self.inner, self.key, self.marker = inner, key, marker

    def __call__(self):
        self.augmenter = self.inner()
        return self

    def derive(self, meta, audio):
        if meta["key"] == self.key and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return self.augmenter.derive(meta, audio)


def test_a_dask_worker_killed_mid_job_loses_and_doubles_nothing(tmp_path, s3, cluster,
                                                                 speech_clips):
    from funfactory.config import config_sha256
    from funfactory.pipelines.augment.config import AugmentConfig
    from funfactory.pipelines.augment.shardwise import DeriveUnits, run_shardwise
    from funfactory.pipelines.augment.transforms import BuildAugmenter, augment_row
    from funfactory.shards.reader import ShardReader, expand_urls

    urls = expand_urls(_augment_inputs(tmp_path, speech_clips, "s3://bucket/kill/in") + "/*.tar")
    config = load_config(AugmentConfig, None, AUGMENT)
    sha = config_sha256(config)
    victim = next(iter(ShardReader(urls[3], decode=False))).key
    marker = tmp_path / "killed"

    def run(out, options, deriver):
        return run_shardwise("augment", urls, out, DeriveUnits("augment", deriver, augment_row),
                             dataset=config.dataset, split=config.split,
                             max_count=config.max_count, config_sha256=sha, options=options)

    clean = run(tmp_path / "clean", beam_options(), BuildAugmenter(config, sha))
    killed = run("s3://bucket/kill/out", dask_options(cluster),
                 KillOnce(BuildAugmenter(config, sha), victim, str(marker)))
    assert marker.exists(), "the planted kill never fired"
    keys = [s.key for s in ShardReader("s3://bucket/kill/out", decode=False)]
    assert len(keys) == len(set(keys)) == clean.run_report["samples"]
    assert killed.run_report["unaccounted"] == []
    assert digests("s3://bucket/kill/out") == digests(tmp_path / "clean")


def _label_cli(manifest: Path, out: Path) -> subprocess.Popen:
    sets = [arg for o in LABEL for arg in ("--set", o)]
    return subprocess.Popen([sys.executable, "-m", "funfactory.cli", "pipeline", "label", "run",
                             *sets, str(manifest), str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def test_a_driver_killed_mid_job_resumes_without_redoing_finished_units(tmp_path):
    from funfactory.pipelines.common.units import done_units, marker_path
    from funfactory.pipelines.label.config import LabelConfig
    from funfactory.pipelines.label.pipeline import run_label
    from tests.label_audio import SENTENCES, write_speech_corpus

    manifest = write_speech_corpus(tmp_path / "in", [SENTENCES[i:i + 1] for i in range(5)])
    clean = tmp_path / "clean"
    run_label(load_config(LabelConfig, None, LABEL), manifest, clean, options=beam_options(),
              echo=lambda *_: None)
    resumed = tmp_path / "resumed"
    work = resumed / "_work"
    proc = _label_cli(manifest, resumed)
    deadline = time.monotonic() + 120
    while len(done_units(work)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {u: Path(marker_path(work, u)).stat().st_mtime_ns for u in done_units(work)}
    assert 2 <= len(before) < 5, f"the kill came at {len(before)} of 5 units"
    report = run_label(load_config(LabelConfig, None, LABEL), manifest, resumed,
                       options=beam_options(), echo=lambda *_: None)
    assert report.extra["units_run_now"] == 5 - len(before)
    assert {u: Path(marker_path(work, u)).stat().st_mtime_ns for u in before} == before
    assert digests(resumed) == digests(clean) != {}
    assert not list(work.glob("**/*.partial")) and not list(work.glob("parts/*.tar"))
