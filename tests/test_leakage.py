"""Planted duplicates (re-encoded, louder, resampled, trimmed, re-punctuated) are all caught by
the leakage index; different content is not flagged."""

import json

import numpy as np
import pytest

from funfactory.eval import minhash
from funfactory.eval.fingerprint import FingerprintIndex, brute_force_match, fingerprint
from funfactory.eval.leakage import Item, LeakageIndex, group_by_test_item, write_leakage_report
from tests.eval_speech import SENTENCES, mp3_roundtrip, resampled, speech, trimmed


@pytest.fixture(scope="module")
def clips():
    return speech()


def _index(items, **kwargs):
    index = LeakageIndex(**kwargs)
    for item in items:
        index.add(item)
    return index


def test_audio_copies_are_caught_in_every_disguise(clips):
    test_items = [Item(f"test{i}", audio=clip) for i, clip in enumerate(clips[:6])]
    index = _index(test_items)
    training = [
        Item("mp3", audio=mp3_roundtrip(clips[0])),
        Item("quieter", audio=clips[1] * 0.1),
        Item("louder", audio=np.clip(clips[2] * 4.0, -1, 1)),
        Item("resampled", audio=resampled(clips[3], 22050), sample_rate=22050),
        Item("trimmed", audio=trimmed(clips[4])),
        Item("everything", audio=mp3_roundtrip(trimmed(clips[5]) * 0.3)),
        Item("other-a", audio=clips[6]),
        Item("other-b", audio=mp3_roundtrip(clips[7])),
    ]
    found = {(o.train_key, o.test_key) for o in index.scan(training)}
    assert found == {("mp3", "test0"), ("quieter", "test1"), ("louder", "test2"),
                     ("resampled", "test3"), ("trimmed", "test4"), ("everything", "test5")}


def test_trim_is_found_at_its_offset(clips):
    index = _index([Item("test", audio=clips[0])])
    (overlap,) = index.scan([Item("train", audio=trimmed(clips[0], 0.5))])
    assert overlap.kind == "audio"
    assert overlap.detail["offset_s"] == pytest.approx(0.5, abs=0.05)
    assert overlap.detail["votes"] >= 50


def test_fingerprint_index_agrees_with_brute_force(clips):
    prints = [fingerprint(c, 16000) for c in clips]
    index = FingerprintIndex()
    for i, p in enumerate(prints):
        index.add(str(i), p)
    query = fingerprint(mp3_roundtrip(clips[2]), 16000)
    (best,) = index.query("q", query, limit=1)
    votes, _ = brute_force_match(query, prints[2])
    assert best.item == "2" and best.votes == votes
    assert max(brute_force_match(query, p)[0] for j, p in enumerate(prints) if j != 2) < 12


def test_text_copies_are_caught_despite_punctuation_case_width_and_numbers():
    index = _index([
        Item("t-punct", text="Please send the quarterly report to the finance team by Friday."),
        Item("t-zh", text="我们明天三点半开会讨论数据库迁移的问题"),
        Item("t-near", text="The museum opens early and closes late on public holidays"),
        Item("t-other", text="Engineers deployed the service to production after the tests"),
    ], audio=False)
    training = [
        Item("a", text="please send the QUARTERLY report, to the finance team by friday!!"),
        Item("b", text="我們明天3:30開會，討論數據庫遷移的問題。"),
        Item("c", text="The museum opens early and closes late on national holidays."),
        Item("d", text="A completely different sentence about cooking pasta at home."),
    ]
    overlaps = {(o.train_key, o.test_key): o for o in index.scan(training)}
    assert set(overlaps) == {("a", "t-punct"), ("b", "t-zh"), ("c", "t-near")}
    assert overlaps[("a", "t-punct")].kind == "text_exact"
    assert overlaps[("b", "t-zh")].kind == "text_exact"
    assert overlaps[("c", "t-near")].kind == "text_near"
    assert 0.7 <= overlaps[("c", "t-near")].score < 1.0


def test_short_common_phrases_are_not_judged_by_text():
    index = _index([Item("t", text="Thank you.")], audio=False)
    assert list(index.scan([Item("x", text="thank you")])) == []
    assert index.counts["text_too_short"] == 1


def test_exact_audio_bytes_match_by_hash():
    index = _index([Item("t", audio_sha256="ab" * 32)], audio=False)
    (overlap,) = index.scan([Item("x", audio_sha256="ab" * 32), Item("y", audio_sha256="cd" * 32)])
    assert (overlap.train_key, overlap.kind) == ("x", "audio_exact")


def test_lsh_finds_near_duplicates_among_many():
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = np.array(["".join(rng.choice(letters, 5)) for _ in range(500)])
    texts = [" ".join(rng.choice(words, 12)) for _ in range(2000)]
    hasher = minhash.MinHasher()
    shingles = minhash.shingle_hashes(texts)
    lsh = minhash.LSHIndex(minhash.band_keys(hasher.signatures(shingles)))
    edited = texts[1234].split()
    edited[5] = "zulu"
    query = minhash.shingle_hashes([" ".join(edited)])
    rows, found = lsh.candidates(minhash.band_keys(hasher.signatures(query)))
    assert 1234 in found.tolist()
    assert len(found) < 50  # candidates, not the whole corpus


def test_leakage_report_lists_every_item_and_its_match(tmp_path):
    index = _index([Item("t1", text=SENTENCES[0]), Item("t2", text=SENTENCES[1]),
                    Item("t3", text=SENTENCES[2])], audio=False)
    grouped = group_by_test_item(index.scan([Item("x", text=SENTENCES[0].upper()),
                                             Item("y", text=SENTENCES[1] + " ")]))
    jsonl, markdown = write_leakage_report(grouped, tmp_path, {"test items": 3})
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [(r["test_key"], r["overlaps"][0]["train_key"]) for r in records] == [
        ("t1", "x"), ("t2", "y")]
    assert "| t1 | x | text_exact | 1.000 | 1 |" in markdown.read_text()


def test_noise_augmented_copy_is_caught(clips):
    """Training data is noise-augmented (section 5.2): a copy at 5 dB SNR still leaks."""
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(len(clips[0])).astype(np.float32)
    gain = np.sqrt(np.mean(clips[0] ** 2) / (np.mean(noise ** 2) * 10 ** 0.5))
    index = _index([Item("test", audio=clips[0]), Item("other", audio=clips[1])])
    overlaps = list(index.scan([Item("noisy", audio=clips[0] + gain * noise)]))
    assert [(o.test_key, o.kind) for o in overlaps] == [("test", "audio")]
