"""Each system's error rate on a job without references (Fun-ASR report section 3.1): the
Dawid-Skene EM against planted systems with known error rates and against a brute-force
maximum-likelihood search, and what the job estimate does to the vote."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from funfactory.pipelines.label.confidence import job_reliability, load_model
from funfactory.pipelines.label.config import VoteConfig
from funfactory.pipelines.label.reliability import (JobReliability, align, dawid_skene,
                                                    posterior_error, slot_posterior)
from funfactory.pipelines.label.vote import decide, rover

MODEL = load_model()
VOCABULARY = [f"w{i}" for i in range(300)]
FIXTURE = Path(__file__).with_name("label_small_clean_job.json")


def planted(rates: dict[str, float], segments: int, words: int, seed: int):
    """Segments whose systems each replace every word with a random other word at their own
    rate (and now and then drop or insert one): the truth, the texts, each system's true WER."""
    rng = np.random.default_rng(seed)
    out, errors, tokens = [], dict.fromkeys(rates, 0), 0
    for _ in range(segments):
        truth = list(rng.choice(VOCABULARY, size=words))
        tokens += words
        texts = {}
        for system, rate in rates.items():
            hyp = []
            for word in truth:
                draw = rng.random()
                if draw < rate * 0.8:
                    hyp.append(str(rng.choice(VOCABULARY)))
                    errors[system] += 1
                elif draw < rate * 0.9:
                    errors[system] += 1  # deleted
                elif draw < rate:
                    hyp += [word, str(rng.choice(VOCABULARY))]
                    errors[system] += 1  # inserted after it
                else:
                    hyp.append(word)
            texts[system] = " ".join(hyp)
        out.append((" ".join(truth), texts))
    return out, {s: errors[s] / tokens for s in rates}


def medoid(texts: dict[str, str]) -> str:
    from funfactory.eval.scoring import pairwise_agreement
    agreement = pairwise_agreement(texts, language="en")
    n = len(agreement.systems)
    return min(agreement.systems, key=lambda s: (sum(
        agreement.matrix[agreement.systems.index(s)][j] for j in range(n)), s))


def test_em_ranks_planted_systems_and_lands_near_their_true_error_rates():
    rates = {"good": 0.04, "fair": 0.12, "poor": 0.3, "garbage": 0.85}
    segments, truth = planted(rates, segments=60, words=14, seed=1)
    aligned = [align(texts, medoid(texts), "en") for _, texts in segments]
    # a flat, weak prior: everything the estimate knows comes from the agreement
    table = dawid_skene(aligned, dict.fromkeys(rates, 0.3), prior_slots=5.0)
    estimated = {s: table[s]["estimated_error"] for s in rates}
    assert sorted(rates, key=estimated.get) == ["good", "fair", "poor", "garbage"]
    for system in rates:
        assert estimated[system] == pytest.approx(truth[system], abs=0.04), (estimated, truth)
    assert table["good"]["segments"] == 60 and table["good"]["iterations"] > 1


def test_em_reaches_the_maximum_likelihood_a_grid_search_finds():
    """Brute force: the marginal likelihood of the slot model (every slot's true token one of
    the tokens written there, each system right with 1 - e, else one of the other K tokens; the
    planted rates are under chance, where the E-step's cap at K / (K + 1) does not act),
    evaluated on a 0.01 grid of every system's rate. EM climbs to a local maximum: no grid point
    near its rates beats them, and started from the grid's best point it stays there."""
    rates = {"a": 0.1, "b": 0.25, "c": 0.4}
    segments, _ = planted(rates, segments=12, words=8, seed=5)
    aligned = [align(texts, medoid(texts), "en") for _, texts in segments]
    table = dawid_skene(aligned, dict.fromkeys(rates, 0.2), prior_slots=0.0)
    em = np.array([[table[s]["slot_error"] for s in "abc"]])

    def log_likelihood(e):  # e: (points, 3) -> (points,)
        total = np.zeros(len(e))
        for a in aligned:
            for slot in a.slots:
                candidates = sorted(set(slot))
                k = max(len(candidates) - 1, 1)
                total += np.log(sum(np.prod([(1 - e[:, i]) if t == c else e[:, i] / k
                                             for i, t in enumerate(slot)], axis=0)
                                    for c in candidates))
        return total

    axis = np.arange(0.01, 0.6, 0.01)
    grid = np.array(list(itertools.product(axis, repeat=3)))
    values = log_likelihood(grid)
    near = np.abs(grid - em).max(axis=1) <= 0.05
    assert log_likelihood(em)[0] >= values[near].max() - 1e-6
    assert values.min() < log_likelihood(em)[0] - 10  # the likelihood is far from flat
    best = grid[values.argmax()]
    again = dawid_skene(aligned, dict(zip("abc", best)), prior_slots=0.0)
    assert [again[s]["slot_error"] for s in "abc"] == pytest.approx(list(best), abs=0.011)


def test_slot_posterior_and_posterior_error_follow_the_rates():
    assert slot_posterior(("x", "x", "y"), (0.1, 0.1, 0.1))["x"] == pytest.approx(0.9)
    # one reliable system outvotes two unreliable ones
    assert slot_posterior(("x", "y", "y"), (0.01, 0.6, 0.6))["x"] > 0.5
    texts = {"a": "the cat sat on the mat", "b": "the cat sat on the mat",
             "c": "a dog stood by a door"}
    aligned = align(texts, "a", "en")
    rates = {"a": 0.1, "b": 0.1, "c": 0.5}
    assert posterior_error(aligned, "a", rates) < 0.05 < posterior_error(aligned, "c", rates)


def test_a_garbage_system_agreeing_with_a_word_never_counts_against_it():
    # two good systems disagree; a garbage one (95 % wrong) writes what the first wrote
    assert slot_posterior(("sun", "son", "sun"), (0.1, 0.1, 0.95))["sun"] == pytest.approx(0.5)
    # a useful third system still decides
    assert slot_posterior(("sun", "son", "sun"), (0.1, 0.1, 0.3))["sun"] == pytest.approx(0.7)


def test_rover_over_the_alignment_keeps_majority_words_and_insertions():
    hypotheses = {"a": "the cat sat on mat", "b": "the cat sat on the mat",
                  "c": "the bat sat on the mat"}
    assert rover(hypotheses, "a", "en") == "the cat sat on the mat"
    assert rover(hypotheses, "a", "en", {"a": 5.0, "b": 1.0, "c": 1.0}) == "the cat sat on mat"


def whisper(text, avg_logprob=-0.3):
    return {"text": text, "language": "en", "avg_logprob": avg_logprob, "no_speech_prob": 0.02,
            "compression_ratio": 1.1}


def sphinx(text, log_posterior=-2.0, score=0.4):
    return {"text": text, "language": "en", "log_posterior": log_posterior, "score": score}


def confident_garbage_job(n=24, seed=2):
    """Segments where the two Whisper systems agree and pocketsphinx writes garbage with scores
    that look sure of themselves (as in real street noise)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = list(rng.choice(VOCABULARY[:60], size=9))
        garbage = list(rng.choice(VOCABULARY[200:], size=7))
        text = " ".join(words)
        out.append({"language": "en", "duration": 3.5, "labels": {
            "whisper-base": whisper(text), "whisper-tiny-en": whisper(text, -0.4),
            "pocketsphinx": sphinx(" ".join(garbage))}})
    return out


def test_a_system_mostly_wrong_on_the_job_loses_its_vote_and_its_veto():
    job = confident_garbage_job()
    reliability = job_reliability(job, MODEL, {"segments": len(job)})
    table = reliability.languages["en"]
    assert table["pocketsphinx"]["estimated_error"] > 0.6
    assert table["whisper-base"]["estimated_error"] < 0.15
    assert reliability.combine("en", "pocketsphinx", 0.05, 1.0) > 0.5
    segment = job[0]
    alone = decide(segment["labels"], "en", 3.5, VoteConfig(), MODEL)
    with_job = decide(segment["labels"], "en", 3.5, VoteConfig(), MODEL, reliability)
    weight = {name: d.labels["reliability"]["pocketsphinx"]["weight"]
              for name, d in (("alone", alone), ("with_job", with_job))}
    assert weight["with_job"] < weight["alone"] / 2
    assert with_job.estimated_wer < alone.estimated_wer
    assert with_job.reason is None, with_job.detail
    assert with_job.labels["chosen"] in ("whisper-base", "whisper-tiny-en")


@pytest.mark.parametrize("order", [("whisper-base", "whisper-tiny-en"),
                                   ("whisper-tiny-en", "whisper-base")])
def test_a_tie_goes_to_the_system_the_job_found_more_reliable(order):
    texts = {"whisper-base": "our train leaves the station at seven in the evening",
             "whisper-tiny-en": "our train leaves the station at seven in the evenings"}
    labels = {s: whisper(texts[s]) for s in order}
    for better, worse in (("whisper-base", "whisper-tiny-en"),
                          ("whisper-tiny-en", "whisper-base")):
        figures = {better: {"slot_error": 0.05, "mean_own_estimate": 0.1, "slots": 400},
                   worse: {"slot_error": 0.3, "mean_own_estimate": 0.1, "slots": 400}}
        job = JobReliability({"en": figures}, {"segments": 40})
        assert decide(labels, "en", 3.5, VoteConfig(), MODEL, job).labels["chosen"] == better


def test_one_system_keeps_its_prior_and_its_own_scores():
    job = [{"language": "zh", "duration": 3.0,
            "labels": {"whisper-base": {**whisper("我们明天开会"), "language": "zh"}}}] * 5
    table = job_reliability(job, MODEL, {"segments": 5}).languages["zh"]["whisper-base"]
    assert table["slots"] == 0
    assert table["estimated_error"] == pytest.approx(table["prior_error"], abs=1e-6)
    assert JobReliability({"zh": {"whisper-base": table}}, {}).combine(
        "zh", "whisper-base", 0.3, 1.0) == 0.3


def test_the_sample_estimate_is_made_once_per_config_and_read_back(tmp_path, monkeypatch):
    from funfactory.pipelines.label import sample_pass
    from funfactory.pipelines.label.config import LabelConfig
    from funfactory.pipelines.label.ingest import Source

    segments = [{**s, "key": f"src{i % 3}-seg{i:05d}", "asr_seconds": 0.5}
                for i, s in enumerate(confident_garbage_job(9))]
    calls = []

    def sampled(cfg, sources, limit):
        calls.append([s.id for s in sources])
        return segments, 3
    monkeypatch.setattr(sample_pass, "sample_segments", sampled)
    sources = [Source(id=f"src{i}", uri=f"file:///in/{i}.wav", path=f"/in/{i}.wav")
               for i in range(5)]
    cfg = LabelConfig()
    first = sample_pass.sample_estimate(cfg, sources, tmp_path, "sha-a", echo=lambda *_: None)
    again = sample_pass.sample_estimate(cfg, sources, tmp_path, "sha-a", echo=lambda *_: None)
    assert len(calls) == 1
    assert again[0].as_dict() == first[0].as_dict() and again[1] == first[1]
    assert set(first[1]) == {s["key"] for s in segments}
    assert first[0].languages["en"]["pocketsphinx"]["estimated_error"] > 0.6
    sample_pass.sample_estimate(cfg, sources, tmp_path, "sha-b", echo=lambda *_: None)
    sample_pass.sample_estimate(cfg, sources, tmp_path, "sha-b", restart=True,
                                echo=lambda *_: None)
    assert len(calls) == 3
    cfg.vote.reliability_sample_segments = 0
    assert sample_pass.sample_estimate(cfg, sources, tmp_path, "sha-c")[1] == {}
    assert len(calls) == 3
    # the sample's order is fixed by the ids, not by the order the sources were listed in
    assert sample_pass.sample_order(sources) == sample_pass.sample_order(sources[::-1])


def test_a_small_clean_job_keeps_the_labels_the_whisper_pair_agrees_on():
    """Ten clean segments, voted as a ten-segment job: every hypothesis as the three systems
    wrote it (with their own scores) for the calibration set's held-out English voice, which no
    map was fitted on (tests/label_small_clean_job.json, ten clean piper clips copied from the
    calibration cache). The Whisper pair agrees word for word on seven. A job this small leans on
    its prior: a prior averaged over clean and 0 dB put such labels at 7.5 % error, under the
    default threshold by a hair; the prior read from the job's own scores puts them under 5 %."""
    from funfactory.eval.scoring import score
    from funfactory.eval.textnorm import scoring_tokens

    segments = json.loads(FIXTURE.read_text(encoding="utf-8"))
    job = job_reliability(segments, MODEL, {"segments": len(segments)})
    agreed, kept = [], []
    for segment in segments:
        labels = segment["labels"]
        decision = decide(labels, "en", segment["duration"], VoteConfig(), MODEL, job)
        if scoring_tokens(labels["whisper-base"]["text"], "en") == scoring_tokens(
                labels["whisper-tiny-en"]["text"], "en"):
            agreed.append(segment["key"])
            assert decision.reason is None, decision.detail
            assert decision.estimated_wer <= 0.05, (segment["key"], decision.estimated_wer)
        if decision.reason is None:
            kept.append((segment["reference"], decision.text))
    assert len(agreed) == 7
    assert len(kept) >= len(segments) / 2
    assert score([r for r, _ in kept], [t for _, t in kept], language="en").rate <= 0.05
