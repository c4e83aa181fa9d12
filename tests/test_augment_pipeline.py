"""The augment Beam pipeline end to end on shards of real TTS speech: same seed, same bytes;
every input accounted for; the report's PNGs; resume after a crash."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from funfactory.cli import main as funfactory_main
from funfactory.config import load_config
from funfactory.pipelines.augment.config import AugmentConfig
from funfactory.pipelines.augment.pipeline import run_augment
from funfactory.pipelines.common.runner import beam_options
from funfactory.shards.index import read_index
from funfactory.shards.reader import ShardReader
from funfactory.shards.verify import verify
from tests.augment_helpers import write_labelled_shards

OVERRIDES = ["seed=7", "noise_only.share=0.5", "rir.probability=0.5", "report_examples=2"]


def shard_digests(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob("*.tar"))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, speech_clips):
    root = tmp_path_factory.mktemp("augment")
    inputs = write_labelled_shards(root / "in", speech_clips[:4], max_count=2)
    config = load_config(AugmentConfig, None, OVERRIDES)
    first = run_augment(inputs, root / "a", config)
    code = funfactory_main(["pipeline", "augment", "run", "--no-report",
                            *[arg for o in OVERRIDES for arg in ("--set", o)],
                            str(inputs), str(root / "b"), "--", "--experiments=beam_fn_api"])
    assert code == 0
    return root, inputs, first


def test_same_seed_gives_byte_identical_shards(runs):
    root, _, _ = runs
    a, b = shard_digests(root / "a"), shard_digests(root / "b")
    assert len(a) == 1 and a == b
    assert read_index(root / "a").equals(read_index(root / "b"))
    assert verify(root / "a").ok


def test_every_input_reaches_a_shard_or_the_rejects(runs):
    root, inputs, result = runs
    input_keys = {s.key for s in ShardReader(inputs)}
    parents = {r["parent_key"] for r in result.rows} | {r["key"] for r in result.rejects}
    assert parents == input_keys
    samples = list(ShardReader(root / "a"))
    noisy = [s for s in samples if s.meta["task"] == "asr"]
    quiet = [s for s in samples if s.meta["task"] == "noise_only"]
    assert len(noisy) == 4 and 0 < len(quiet) < 4
    for s in noisy:
        aug = s.meta["augment"]
        assert aug["noise_split"] == "train" and -5 <= aug["snr_db"] <= 30
        assert s.meta["text"] and s.meta["lineage"]["pipeline"] == "augment"
    assert any(s.meta["augment"]["rir_id"] for s in noisy)
    assert all(s.meta["text"] == "" for s in quiet)


def test_report_writes_snr_histogram_and_spectrograms(runs):
    root, _, result = runs
    folder = root / "a" / "_reports"
    for name in ("snr-histogram.png", "spectrograms.png"):
        data = (folder / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    report = json.loads((folder / "augment-summary.json").read_text())
    run_report = json.loads((folder / "augment-report.json").read_text())
    assert run_report["samples"] == len(result.rows) and run_report["unaccounted"] == []
    assert report["by_kind"]["noise"] == len([r for r in result.rows if r["kind"] == "noise"])
    assert report["snr_db"]["count"] == report["by_kind"]["noise"]
    assert report["noise_splits_used"] == ["train"]


def test_a_rerun_that_finds_nothing_new_rewrites_nothing(runs):
    root, inputs, _ = runs
    config = load_config(AugmentConfig, None, OVERRIDES)
    again = root / "again"
    shutil.copytree(root / "a", again)
    stamps = {p.name: p.stat().st_mtime_ns for p in sorted(again.glob("*.tar"))}
    result = run_augment(inputs, again, config, report=False)
    assert result.run_report["extra"]["units_run_now"] == 0
    assert result.run_report["extra"]["shards_written_now"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in sorted(again.glob("*.tar"))} == stamps
    assert not list((again / "_work" / "parts").glob("*.tar")), "packed parts were kept"


def test_a_rerun_reads_no_shard_back_and_mends_an_index_killed_before_its_merge(runs,
                                                                              monkeypatch):
    import pyarrow.parquet as pq

    from funfactory.shards import storage

    root, inputs, _ = runs
    config = load_config(AugmentConfig, None, OVERRIDES)
    again = root / "again-index"
    shutil.copytree(root / "a", again)
    full = read_index(again)
    (index,) = again.glob("*.parquet")
    pq.write_table(full.slice(0, 0), index)  # the shards are there, the index lists none
    hashed = []
    real = storage.sha256_of
    monkeypatch.setattr(storage, "sha256_of", lambda loc, *a: hashed.append(loc) or real(loc, *a))
    result = run_augment(inputs, again, config, report=False)
    assert result.run_report["extra"]["shards_written_now"] == 0
    assert hashed == [], "a rerun read back shards this job had already hashed"
    assert read_index(again).equals(full)
    # without the work folder's ledger, each shard is hashed once (and still not rewritten)
    for ledger in (again / "_work").glob("packed-*.json"):
        ledger.unlink()
    result = run_augment(inputs, again, config, report=False)
    assert result.run_report["extra"]["shards_written_now"] == 0
    assert sorted(hashed) == sorted(str(p) for p in again.glob("*.tar"))


def test_an_input_rewritten_under_the_same_name_is_derived_again(runs, speech_clips, tmp_path):
    root, _, _ = runs
    config = load_config(AugmentConfig, None, OVERRIDES)
    inputs = write_labelled_shards(tmp_path / "in", speech_clips[:2], max_count=2)
    out = tmp_path / "out"
    run_augment(inputs, out, config, report=False)
    # the input job is rerun with other clips: same folder, same shard names, new content
    shutil.rmtree(inputs)
    write_labelled_shards(inputs, speech_clips[2:4], max_count=2)
    resumed = run_augment(inputs, out, config, report=False)
    assert resumed.run_report["extra"]["units_run_now"] == 1
    fresh = run_augment(inputs, tmp_path / "fresh", config, report=False)
    assert shard_digests(out) == shard_digests(tmp_path / "fresh")
    assert {r["parent_key"] for r in resumed.rows} == {r["parent_key"] for r in fresh.rows}


@pytest.mark.slow
def test_multiprocess_runner_gives_the_same_shards(runs):
    root, inputs, _ = runs
    config = load_config(AugmentConfig, None, OVERRIDES)
    options = beam_options(direct_num_workers=2, direct_running_mode="multi_processing")
    run_augment(inputs, root / "mp", config, options, report=False)
    assert shard_digests(root / "mp") == shard_digests(root / "a")


def test_options_after_the_paths_are_refused(runs, tmp_path):
    _, inputs, _ = runs
    code = funfactory_main(["pipeline", "augment", "run", str(inputs), str(tmp_path / "x"),
                            "--set", "seed=1"])
    assert code == 2 and not (tmp_path / "x").exists()


def test_test_noise_cannot_make_training_shards(runs, tmp_path):
    from funfactory.errors import FunfactoryError

    _, inputs, _ = runs
    config = load_config(AugmentConfig, None, ["noise.split=test"])
    with pytest.raises(FunfactoryError, match="test-time noise"):
        run_augment(inputs, tmp_path / "leak", config)


def test_another_seed_gives_other_noise(tmp_path, runs):
    root, inputs, _ = runs
    config = load_config(AugmentConfig, None, OVERRIDES + ["seed=8", "noise_only.share=0"])
    other = run_augment(inputs, tmp_path / "c", config, report=False)
    first = {r["parent_key"]: (r["noise_id"], r["snr_db"]) for r in runs[2].rows
             if r["kind"] == "noise"}
    second = {r["parent_key"]: (r["noise_id"], r["snr_db"]) for r in other.rows}
    assert first.keys() == second.keys() and first != second


class DropOne:
    """A deriver that loses one input: no output and no reject for ``key``."""

    def __init__(self, inner, key: str):
        self.inner, self.key = inner, key

    def __call__(self):
        self.augmenter = self.inner()
        return self

    def derive(self, meta, audio):
        if meta["key"] == self.key:
            return [], []
        return self.augmenter.derive(meta, audio)


def test_a_planted_loss_is_caught_as_unaccounted(runs, tmp_path):
    from funfactory.config import config_sha256
    from funfactory.pipelines.augment.shardwise import DeriveUnits, run_shardwise, unit_id
    from funfactory.pipelines.augment.transforms import BuildAugmenter, augment_row
    from funfactory.shards.reader import expand_urls

    _, inputs, _ = runs
    config = load_config(AugmentConfig, None, OVERRIDES)
    sha = config_sha256(config)
    urls = expand_urls(inputs)
    victim = next(iter(ShardReader(urls[0], decode=False))).key
    result = run_shardwise("augment", urls, tmp_path / "out",
                           DeriveUnits("augment", DropOne(BuildAugmenter(config, sha), victim),
                                       augment_row),
                           dataset=config.dataset, split=config.split,
                           max_count=config.max_count, config_sha256=sha,
                           echo=lambda *_: None)
    assert result.run_report["unaccounted"] == [unit_id(urls[0])]
