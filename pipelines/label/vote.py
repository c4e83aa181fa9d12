"""Label choice and keep decision by reliability-weighted agreement (Fun-ASR report sections 3.1
and 4.4.3).

For each segment, every system that answered votes with its reliability on that segment
(:mod:`funfactory.pipelines.label.confidence`: its expected error from its own scores, moved by the
job's estimate of that system, as log-odds), and the distances are the shared scoring
normalisation's pairwise error rates (WER for ``en``, CER for ``zh``, mixed error rate for ``zh-en``
and unknown). The label is

- ``medoid`` (default): the reliability-weighted medoid, as the system wrote it (case and
  punctuation kept); ties go to the more reliable system, never to configuration order;
- ``rover``: a reliability-weighted word vote (:func:`rover`) over the hypotheses aligned to the
  medoid; its text is in the scoring form (lower case, no punctuation).

The keep rule is a threshold on the chosen label's estimated error rate (:func:`keep_threshold`:
the segment language's entry in ``vote.max_estimated_wer_by_language``, else
``vote.max_estimated_wer``, else the threshold fitted for the language with the confidence
model). Reasons, in the order checked: ``too_few_hypotheses``,
``empty_text``, ``repetition_loop`` (the chosen text loops: compression ratio or an n-gram
repeat), and where one system alone covers the language ``hallucination`` (Whisper's no-speech
rule) and ``low_likelihood``; then ``high_estimated_wer``. A reject's ``detail`` carries the
estimate and the evidence (each system's estimated error, weight and text) after ``evidence=``.

``labels`` keeps every hypothesis plus ``chosen``, ``estimated_wer``, ``reliability`` (each
system's estimated error and weight on this segment) and ``agreement`` (the metric, the mean
pairwise error, the chosen label's weighted disagreement, the matrix; null for one system).
Every figure is a function of the segment's own hypotheses and the job's reliability estimate
(fixed before the job's units run and kept for a resume), so it does not depend on the batch,
the worker or the order the units ran in.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass

import apache_beam as beam

from funfactory.errors import FunfactoryError
from funfactory.eval.textnorm import scoring_tokens
from funfactory.pipelines.common.rejects import reject_row
from funfactory.pipelines.label.config import VoteConfig
from funfactory.pipelines.label.confidence import (Choice, ConfidenceModel, choose, estimate,
                                                   load_model)
from funfactory.pipelines.label.filters import longest_repeat
from funfactory.pipelines.label.reliability import NONE, JobReliability, align


def rover(hypotheses: dict[str, str], pivot: str, language: str | None,
          weights: dict[str, float] | None = None) -> str:
    """Word-level weighted vote over hypotheses aligned to the ``pivot`` system (ties: pivot).

    In each slot of the alignment (:func:`funfactory.pipelines.label.reliability.align`) the
    pivot token's slot goes to the token with the most weight (a deletion votes for nothing); an
    insertion gap keeps its phrase when systems holding more than half the total weight inserted
    it. Without ``weights`` every system weighs 1.
    """
    weights = weights or {s: 1.0 for s in hypotheses}
    aligned = align(hypotheses, pivot, language)
    total = sum(weights[s] for s in aligned.systems)
    at = aligned.systems.index(pivot)
    words: list[str] = []
    for tokens, is_token in zip(aligned.slots, aligned.token_slot):
        votes: Counter = Counter()
        for system, token in zip(aligned.systems, tokens):
            votes[token] += weights[system]
        if is_token:
            best = max(votes.values())
            winner = tokens[at] if votes[tokens[at]] == best else \
                max(votes.items(), key=lambda kv: (kv[1], kv[0]))[0]
        else:
            phrase, weight = max(((t, v) for t, v in votes.items() if t),
                                 key=lambda kv: (kv[1], kv[0]))
            winner = phrase if weight * 2 > total else ""
        if winner:
            words.append(winner)
    return " ".join(words)


METHODS = ("medoid", "rover")


@dataclass
class Decision:
    """The vote on one segment: the label, its figures, and the reject reason (None: kept)."""

    text: str
    labels: dict  # what the sample's ``labels`` gains: chosen, estimated_wer, reliability, ...
    estimated_wer: float | None
    reason: str | None = None
    detail: str = ""


def _evidence(choice: Choice, texts: dict[str, str], estimated: float | None,
              scores: dict[str, dict], language: str) -> str:
    return json.dumps({"language": language,
                       "estimated_wer": None if estimated is None else round(estimated, 4),
                       "chosen": choice.chosen, "metric": choice.metric,
                       "systems": {s: {"estimated_error": round(choice.errors[s], 4),
                                       "weight": round(choice.weights[s], 3),
                                       **scores.get(s, {}), "text": texts[s][:160]}
                                   for s in choice.systems}}, ensure_ascii=False)


def _own_scores(label: dict) -> dict:
    return {k: label[k] for k in ("avg_logprob", "no_speech_prob", "compression_ratio",
                                  "log_posterior") if k in label}


def _loop(text: str, label: dict, language: str | None, cfg: VoteConfig) -> str | None:
    repeats, gram = longest_repeat(scoring_tokens(text, language))
    if repeats > cfg.max_repeats:
        return f"{gram!r} repeated {repeats} times in a row (vote.max_repeats {cfg.max_repeats})"
    ratio = label.get("compression_ratio")
    if ratio is not None and ratio > cfg.max_compression_ratio:
        return (f"compression ratio {ratio:.2f} > vote.max_compression_ratio "
                f"{cfg.max_compression_ratio}")
    return None


def _single_system_fault(label: dict, cfg: VoteConfig) -> tuple[str, str] | None:
    logprob, no_speech = label.get("avg_logprob"), label.get("no_speech_prob")
    if logprob is None:
        return None
    if no_speech is not None and no_speech > cfg.max_no_speech_prob and \
            logprob < cfg.min_avg_logprob:
        return "hallucination", (f"no-speech probability {no_speech:.2f} > "
                                 f"vote.max_no_speech_prob {cfg.max_no_speech_prob} with average "
                                 f"log-probability {logprob:.2f}: text over no speech")
    if logprob < cfg.min_avg_logprob:
        return "low_likelihood", (f"average log-probability {logprob:.2f} < "
                                  f"vote.min_avg_logprob {cfg.min_avg_logprob}")
    return None


def keep_threshold(cfg: VoteConfig, model: ConfidenceModel, language: str) -> tuple[float, str]:
    """The threshold on a segment's estimated error and the setting it comes from: the language's
    entry in ``vote.max_estimated_wer_by_language``, else ``vote.max_estimated_wer``, else the
    confidence model's fitted threshold for the language."""
    if language in cfg.max_estimated_wer_by_language:
        return (cfg.max_estimated_wer_by_language[language],
                f"vote.max_estimated_wer_by_language.{language}")
    if cfg.max_estimated_wer is not None:
        return cfg.max_estimated_wer, "vote.max_estimated_wer"
    return model.threshold(language), f"the fitted threshold for {language or 'unknown'}"


def decide(labels: dict[str, dict], language: str, duration: float, cfg: VoteConfig,
           model: ConfidenceModel, job: JobReliability = NONE) -> Decision:
    """Choose, estimate and keep or reject one segment (module docstring). ``labels`` maps each
    system to its hypothesis dict (``text`` plus its own scores, or ``error``); ``job`` is the
    job's reliability estimate (none: each system's own scores alone)."""
    answered = {s: label for s, label in labels.items() if "error" not in label}
    lang = language or None
    if len(answered) < max(1, cfg.min_hypotheses):
        return Decision("", {}, None, "too_few_hypotheses",
                        f"{len(answered)} of {len(labels)} systems answered "
                        f"(vote.min_hypotheses {cfg.min_hypotheses})")
    texts = {s: label.get("text", "") for s, label in answered.items()}
    if not any(scoring_tokens(text, lang) for text in texts.values()):
        return Decision("", {}, None, "empty_text", "every system wrote nothing")
    choice = choose(answered, language, duration, model, job)
    chosen = choice.chosen
    estimated = estimate(choice, model, language)
    out = {"chosen": chosen, "estimated_wer": round(estimated, 4),
           "reliability": {s: {"estimated_error": round(choice.errors[s], 4),
                               "weight": round(choice.weights[s], 4)} for s in choice.systems},
           "agreement": None}
    if len(choice.systems) > 1:
        out["agreement"] = {
            "metric": choice.metric,
            f"mean_pairwise_{choice.metric}": round(choice.mean_pairwise, 4),
            "chosen_weighted_distance": round(choice.expected_loss[chosen], 4),
            "systems": list(choice.systems),
            "matrix": [[round(v, 4) for v in row] for row in choice.matrix]}
    text = texts[chosen]
    if cfg.method == "rover" and len(texts) > 2:
        text = out["rover"] = rover(texts, chosen, lang, choice.weights)
    decision = Decision(text, out, estimated)
    loop = _loop(text, answered[chosen], lang, cfg)
    fault = ("repetition_loop", loop) if loop else None
    if fault is None and len(choice.systems) == 1:
        fault = _single_system_fault(answered[chosen], cfg)
    threshold, setting = keep_threshold(cfg, model, language)
    if fault is None and estimated > threshold:
        fault = "high_estimated_wer", (f"estimated {choice.metric} {estimated:.3f} > "
                                       f"{setting} {threshold}")
    if fault is not None:
        evidence = _evidence(choice, texts, estimated,
                             {s: _own_scores(answered[s]) for s in texts}, language)
        decision.reason = fault[0]
        decision.detail = f"{fault[1]}; chosen {chosen}: {text[:200]!r}; evidence={evidence}"
    return decision


class Vote(beam.DoFn):
    """The vote over each segment, with the job's reliability estimate (made before the job
    runs, by :mod:`funfactory.pipelines.label.sample_pass`, so every worker votes alike)."""

    def __init__(self, cfg: VoteConfig, job: JobReliability = NONE):
        if cfg.method not in METHODS:
            raise FunfactoryError(f"vote.method {cfg.method!r}: use one of {METHODS}")
        thresholds = {f"vote.max_estimated_wer_by_language.{k}": v
                      for k, v in cfg.max_estimated_wer_by_language.items()}
        if cfg.max_estimated_wer is not None:
            thresholds["vote.max_estimated_wer"] = cfg.max_estimated_wer
        for setting, value in thresholds.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise FunfactoryError(f"{setting} {value!r} must be a number >= 0 (an error "
                                      "rate: 0.05 keeps labels estimated at 5 % or better)")
        self.cfg = cfg
        self.job = job

    def setup(self):
        self.model = load_model(self.cfg.confidence_model)
        scoring_tokens("warm up the ITN grammars 1", "en")
        scoring_tokens("预热 一", "zh")

    def process(self, item):
        unit, kind, p = item
        if kind != "segment":
            yield item
            return
        started = time.perf_counter()
        decision = decide(p["labels"], p["language"], p["duration"], self.cfg, self.model,
                          self.job)
        p = {**p, "labels": {**p["labels"], **decision.labels}, "label_text": decision.text,
             "stage_seconds": {**p["stage_seconds"], "vote": time.perf_counter() - started}}
        if decision.reason is None:
            beam.metrics.Metrics.counter("vote", "kept").inc()
            yield unit, kind, p
            return
        beam.metrics.Metrics.counter("vote", "dropped").inc()
        row = reject_row(unit=unit, key=p["key"], stage="vote", reason=decision.reason,
                         detail=decision.detail, uri=p["uri"], offset=p["offset"],
                         duration=p["duration"])
        row["stage_seconds"] = p["stage_seconds"]
        yield unit, "reject", row
