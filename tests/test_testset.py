"""The test-set pipeline end to end: cutoff by date, undated items reported, planted overlaps with
the training shards removed, export for transcription, import back as shards, `testset check`."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from funfactory.cli import main
from funfactory.errors import FunfactoryError
from funfactory.eval.textnorm import normalize_label
from funfactory.pipelines.testset import (
    PoolItem,
    TestsetConfig,
    build_testset,
    load_pool,
    split_by_date,
)
from funfactory.shards.reader import ShardReader
from funfactory.shards.schema import new_meta
from funfactory.shards.writer import ShardWriter
from tests.eval_speech import SENTENCES, mp3_roundtrip, speech, trimmed

LINEAGE = {"pipeline": "test", "version": "0", "config_sha256": "0" * 64}


def _write_shards(out_dir, dataset, samples, max_count=1000):
    """samples: (key, text, audio) -> one shard set."""
    with ShardWriter(out_dir, dataset, "train", max_count=max_count) as writer:
        for key, text, audio in samples:
            writer.write(new_meta(key=key, text=text, language="en", duration=len(audio) / 16000,
                                  source_id="src" + key, uri=f"file:///{key}.wav", **LINEAGE), audio)
    return out_dir


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A pool of six media items and training shards that overlap two of them."""
    clips = speech()
    root = tmp_path_factory.mktemp("testset")
    media = root / "media"
    media.mkdir()
    pool = [
        # id, audio, published_at, draft text
        ("leak-audio", clips[0], "2025-08-01", ""),
        ("leak-text", clips[1], "2025-09-10", SENTENCES[2]),
        ("clean", clips[3], "2025-07-02", SENTENCES[3]),
        ("old", clips[4], "2025-06-30", SENTENCES[4]),
        ("undated", clips[5], None, SENTENCES[5]),
        ("bad-date", clips[6], "last spring", SENTENCES[6]),
    ]
    with (root / "pool.jsonl").open("w") as f:
        for item_id, audio, published, draft in pool:
            sf.write(media / f"{item_id}.wav", audio, 16000, subtype="PCM_16")
            f.write(json.dumps({"id": item_id, "audio": f"media/{item_id}.wav",
                                "published_at": published, "text": draft}) + "\n")
    train = _write_shards(root / "train", "corpus", [
        # the audio of "leak-audio", MP3-encoded, trimmed, under a different transcript
        ("tr-audio", "a transcript that has nothing in common", mp3_roundtrip(trimmed(clips[0]))),
        # the words of "leak-text" (re-punctuated, upper-cased) spoken by another clip
        ("tr-text", SENTENCES[2].upper().replace(" ", ", ", 1), clips[7]),
        ("tr-other", SENTENCES[7], clips[7][: len(clips[7]) // 2]),
    ], max_count=2)
    return root, train


@pytest.fixture(scope="module")
def built(world):
    root, train = world
    result = build_testset(root / "pool.jsonl", train, root / "out", TestsetConfig(cutoff="2025-07-01"))
    return root, result


def test_cutoff_is_applied_by_date_and_undated_items_are_reported():
    items = [PoolItem("a", "a.wav", "2025-07-01"), PoolItem("b", "b.wav", "2025-07-02T08:00:00Z"),
             PoolItem("c", "c.wav", None), PoolItem("d", "d.wav", "07/05/2025"),
             PoolItem("e", "e.wav", "2024-12-31")]
    split = split_by_date(items, "2025-07-01")
    assert [i.id for i in split.after] == ["b"]
    assert [i.id for i in split.on_or_before] == ["a", "e"]
    assert [i.id for i in split.undated] == ["c"]
    assert [i.id for i in split.bad_date] == ["d"]
    with pytest.raises(FunfactoryError, match="YYYY-MM-DD"):
        split_by_date(items, "July")


def test_build_keeps_only_new_unleaked_items(built):
    root, result = built
    assert [i.id for i in result.kept] == ["clean"]
    assert sorted(result.removed) == ["leak-audio", "leak-text"]
    assert result.removed["leak-audio"][0].kind == "audio"
    assert result.removed["leak-audio"][0].train_key == "tr-audio"
    assert result.removed["leak-text"][0].kind == "text_exact"
    assert result.removed["leak-text"][0].train_key == "tr-text"
    report = json.loads((root / "out" / "report.json").read_text())
    assert report["undated"] == ["undated"] and report["bad_date"] == ["bad-date"]
    assert report["on_or_before_cutoff"] == 1 and report["kept"] == 1
    assert report["training_items_scanned"] == 3


def test_leakage_report_names_each_removed_item_and_its_match(built):
    root, _ = built
    records = [json.loads(line) for line in (root / "out" / "leakage.jsonl").read_text().splitlines()]
    assert {r["test_key"]: r["overlaps"][0]["train_key"] for r in records} == {
        "leak-audio": "tr-audio", "leak-text": "tr-text"}
    audio = next(r for r in records if r["test_key"] == "leak-audio")["overlaps"][0]
    assert audio["score"] > 0.1 and audio["detail"]["votes"] > 50
    assert "| leak-text | tr-text | text_exact |" in (root / "out" / "leakage.md").read_text()


def test_export_then_import_gives_a_test_shard_set(built):
    root, _ = built
    with (root / "out" / "transcription.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["clean"]
    assert rows[0]["draft_text"] == SENTENCES[3] and rows[0]["text"] == ""
    jsonl = [json.loads(x) for x in (root / "out" / "transcription.jsonl").read_text().splitlines()]
    assert jsonl[0]["audio"] == rows[0]["audio"]
    rows[0]["text"] = "She bought fresh vegetables and twenty two loaves of bread at the market."
    rows.append({**rows[0], "id": "not-done", "text": ""})
    with (root / "filled.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["testset", "import", "--transcripts", str(root / "filled.csv"),
                 "--out", str(root / "test-shards")]) == 0
    (sample,) = list(ShardReader(root / "test-shards"))
    assert sample.key == "clean" and sample.meta["task"] == "test"
    assert sample.meta["text"] == normalize_label(rows[0]["text"])
    assert "22" in sample.meta["text"]  # "twenty two loaves" went through ITN
    assert sample.meta["raw_text"] == rows[0]["text"]
    assert sample.meta["source"]["published_at"] == "2025-07-02"
    assert abs(len(sample.audio) - len(speech()[3])) <= 1


def test_check_command_flags_leaks_and_passes_clean_sets(world, tmp_path):
    clips = speech()
    _, train = world
    leaky = _write_shards(tmp_path / "leaky", "eval", [
        ("t-copy", SENTENCES[7], clips[7] * 0.5),  # tr-text's audio, quieter, other words
        ("t-new", SENTENCES[6], clips[6]),
    ])
    clean = _write_shards(tmp_path / "clean", "eval", [("t-new", SENTENCES[6], clips[6])])
    assert main(["testset", "check", "--train", str(train), "--test", str(leaky),
                 "--out", str(tmp_path / "r1")]) == 1
    records = [json.loads(x) for x in (tmp_path / "r1" / "leakage.jsonl").read_text().splitlines()]
    assert [r["test_key"] for r in records] == ["t-copy"]
    assert {o["train_key"] for o in records[0]["overlaps"]} >= {"tr-text"}
    assert main(["testset", "check", "--train", str(train), "--test", str(clean),
                 "--out", str(tmp_path / "r2"), "--no-audio"]) == 0


@pytest.mark.slow
def test_check_with_worker_processes_finds_the_same_leaks(world, tmp_path):
    clips = speech()
    _, train = world
    leaky = _write_shards(tmp_path / "leaky", "eval", [("t-copy", SENTENCES[7], clips[7] * 0.5)])
    assert main(["testset", "check", "--train", str(train), "--test", str(leaky),
                 "--out", str(tmp_path / "r"), "--workers", "2"]) == 1
    (record,) = [json.loads(x) for x in (tmp_path / "r" / "leakage.jsonl").read_text().splitlines()]
    assert record["test_key"] == "t-copy"
    assert {o["train_key"] for o in record["overlaps"]} >= {"tr-text"}


def test_pool_from_a_folder_with_sidecars(tmp_path):
    audio = np.zeros(1600, np.float32)
    sf.write(tmp_path / "a.wav", audio, 16000)
    sf.write(tmp_path / "b.flac", audio, 16000)
    (tmp_path / "a.json").write_text(json.dumps({"published_at": "2025-08-01", "text": "hi"}))
    items = {i.id: i for i in load_pool(tmp_path)}
    assert items["a"].published_at == "2025-08-01" and items["a"].text == "hi"
    assert items["b"].published_at is None


def test_bad_pool_lines_name_the_file_and_line(tmp_path):
    manifest = tmp_path / "pool.jsonl"
    manifest.write_text('{"audio": "x.wav"}\nnot json\n')
    with pytest.raises(FunfactoryError, match="pool.jsonl:2"):
        load_pool(manifest)
