"""Benchmarks for evaluation and leakage checks (Fun-ASR report section 6, 6.1).

1. Text leakage: N test texts against M training texts with the MinHash-LSH index
   (:class:`funfactory.eval.leakage.LeakageIndex`), M growing to 100k; anchor: brute-force exact
   Jaccard of every pair, timed on a slice and scaled to N x M in the same run.
2. Audio leakage: N test clips against M training clips (real TTS speech) with the fingerprint
   index; anchor: brute-force pairwise matching (``brute_force_match``) of every pair, same
   fingerprints, same run. Fingerprinting itself (linear in M) is reported apart.
3. Scoring throughput: utterances/s of :func:`funfactory.eval.scoring.score` (normalisation, ITN,
   tokenisation, jiwer alignment) against jiwer called directly on the raw strings.

Run: ``python -m bench.bench_eval`` (``--quick`` for smaller sizes).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

ENGLISH_WORDS = (
    "report finance team meeting database migration train airport market morning service "
    "production tests museum holiday plants river bank model audio shard budget review deploy "
    "notes server night tickets berlin stadium noise recording call quarter weekly customer "
    "invoice contract design launch feature release branch merge request cluster node storage "
    "network latency").split()
CHINESE_CHARS = "我们明天开会讨论数据库迁移的问题今天天气很好请把报告发给财务团队模型训练音频测试集发布"


def _row(benchmark, figure, value, anchor, anchor_value):
    ratio = anchor_value / value if value else float("inf")
    print(f"{benchmark:28s} {figure:40s} {value:12.4g}   {anchor:36s} {anchor_value:12.4g}   x{ratio:.1f}")
    return {"benchmark": benchmark, "figure": figure, "value": value, "anchor": anchor,
            "anchor_value": anchor_value, "ratio": ratio}


def _zipf_vocabulary(rng, size: int, make) -> tuple[list[str], np.ndarray]:
    words = [make(rng) for _ in range(size)]
    weights = 1.0 / np.arange(1, size + 1)
    return words, weights / weights.sum()


def synthetic_texts(count: int, seed: int) -> list[str]:
    """Transcript-like texts: a third Chinese (Zipf over 3000 characters), the rest English-like
    (Zipf over 5000 pseudo-words, the 50 commonest being real words)."""
    vocab_rng = np.random.default_rng(0)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    words, word_p = _zipf_vocabulary(vocab_rng, 5000, lambda r: "".join(r.choice(letters, r.integers(3, 9))))
    words[:len(ENGLISH_WORDS)] = ENGLISH_WORDS
    chars, char_p = _zipf_vocabulary(vocab_rng, 3000, lambda r: chr(int(r.integers(0x4E00, 0x9FA5))))
    chars[:len(CHINESE_CHARS)] = list(CHINESE_CHARS)
    rng = np.random.default_rng(seed)
    texts = []
    for i in range(count):
        if i % 3 == 0:
            texts.append("".join(rng.choice(chars, rng.integers(12, 30), p=char_p)))
        else:
            texts.append(" ".join(rng.choice(words, rng.integers(8, 20), p=word_p)).capitalize() + ".")
    return texts


def bench_text(n_test: int, sizes: list[int]) -> list[dict]:
    from funfactory.eval import minhash
    from funfactory.eval.leakage import Item, LeakageIndex, scoring_text

    rows = []
    test_texts = synthetic_texts(n_test, seed=1)
    training_all = synthetic_texts(max(sizes), seed=2)
    for planted, i in enumerate(range(0, n_test, max(1, n_test // 20))):
        training_all[planted * 97] = test_texts[i].upper().replace(" ", ", ", 1)
    scoring_text("warm up the normalisers")
    for size in sizes:
        training = training_all[:size]
        started = time.perf_counter()
        index = LeakageIndex(audio=False)
        for i, text in enumerate(test_texts):
            index.add(Item(f"t{i}", text=text))
        found = {o.test_key for o in index.scan(Item(f"m{j}", text=t) for j, t in enumerate(training))}
        indexed = time.perf_counter() - started
        # Anchor: exact Jaccard of every (test, training) pair, timed on a slice and scaled.
        test_shingles = minhash.shingle_hashes([scoring_text(t) for t in test_texts])
        slice_size = min(size, 200)
        train_shingles = minhash.shingle_hashes([scoring_text(t) for t in training[:slice_size]])
        started = time.perf_counter()
        for a in test_shingles:
            for b in train_shingles:
                minhash.jaccard(a, b)
        brute = (time.perf_counter() - started) * size / slice_size
        rows.append(_row("text leakage", f"{n_test} x {size}: index+scan s ({len(found)} leaks)",
                         indexed, "all-pairs Jaccard s (scaled)", brute))
    return rows


def speech_clips(count: int, seed: int = 3) -> list[np.ndarray]:
    import hibari
    import soxr

    rng = np.random.default_rng(seed)
    voice = hibari.Hibari(voice="heart", threads=1)
    clips = []
    for i in range(count):
        sentence = " ".join(rng.choice(ENGLISH_WORDS, rng.integers(6, 12))).capitalize() + "."
        audio = voice(sentence, seed=i)
        clips.append(soxr.resample(audio, hibari.SAMPLE_RATE, 16000).astype(np.float32))
    return clips


def bench_audio(n_test: int, sizes: list[int]) -> list[dict]:
    from funfactory.eval.fingerprint import FingerprintIndex, brute_force_match, fingerprint

    rows = []
    clips = speech_clips(max(sizes))
    started = time.perf_counter()
    prints = [fingerprint(c, 16000) for c in clips]
    per_clip = (time.perf_counter() - started) / len(clips)
    seconds = sum(len(c) for c in clips) / 16000 / len(clips)
    rows.append(_row("audio fingerprint", f"s per clip ({seconds:.1f} s audio)", per_clip,
                     "clip duration s", seconds))
    queries = [fingerprint(clips[i][8000:] * 0.5, 16000) for i in range(n_test)]
    for size in sizes:
        index = FingerprintIndex()
        for i in range(size):
            index.add(str(i), prints[i])
        started = time.perf_counter()
        hits = sum(bool(index.query(str(q), p)) for q, p in enumerate(queries))
        indexed = time.perf_counter() - started
        started = time.perf_counter()
        for p in queries:
            for i in range(size):
                brute_force_match(p, prints[i])
        brute = time.perf_counter() - started
        rows.append(_row("audio leakage", f"{n_test} x {size}: index query s ({hits} hits)",
                         indexed, "all-pairs matching s", brute))
    return rows


def bench_scoring(count: int) -> list[dict]:
    import jiwer

    from funfactory.eval import textnorm
    from funfactory.eval.scoring import score

    rng = np.random.default_rng(4)
    references = synthetic_texts(count, seed=5)
    hypotheses = []
    for text in references:
        words = text.split(" ") if " " in text else list(text)
        if words:
            words[int(rng.integers(len(words)))] = "x"
        hypotheses.append((" " if " " in text else "").join(words))
    started = time.perf_counter()
    jiwer.process_words(references, hypotheses)
    direct = time.perf_counter() - started
    textnorm.normalize_for_scoring.cache_clear()
    started = time.perf_counter()
    score(references, hypotheses, metric="mer")
    cold = time.perf_counter() - started
    started = time.perf_counter()
    score(references, hypotheses, metric="mer")
    warm = time.perf_counter() - started
    return [_row("scoring", "utterances/s, normalised, cold cache", count / cold,
                 "jiwer direct on raw text, utt/s", count / direct),
            _row("scoring", "utterances/s, normalised, warm cache", count / warm,
                 "jiwer direct on raw text, utt/s", count / direct)]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    args = parser.parse_args(argv)
    if args.quick:
        text_sizes, audio_sizes, n_audio, n_scoring = [1000, 10000], [25, 50, 100], 10, 2000
    else:
        text_sizes, audio_sizes, n_audio, n_scoring = [10000, 100000], [50, 100, 200], 20, 10000
    print(f"{'benchmark':28s} {'figure':40s} {'value':>12s}   {'anchor':36s} {'anchor value':>12s}   ratio")
    rows = bench_text(1000, text_sizes)
    rows += bench_audio(n_audio, audio_sizes)
    rows += bench_scoring(n_scoring)
    return rows


if __name__ == "__main__":
    main()
