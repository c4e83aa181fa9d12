"""Label choice by agreement (Fun-ASR report sections 3.1 and 4.4.3).

For each segment, the hypotheses of every system that answered are compared pairwise with the
shared scoring normalisation (:func:`funfactory.eval.scoring.pairwise_agreement`: WER for
``en``, CER for ``zh``, mixed error rate for ``zh-en`` and unknown). The label is

- ``medoid`` (default): the hypothesis with the smallest mean distance to the others, as the
  system wrote it (case and punctuation kept);
- ``rover``: a word-level vote (:func:`rover`) over the hypotheses aligned to the medoid; its
  text is in the scoring form (lower case, no punctuation), so it suits scoring-form training.

The segment is rejected when fewer than ``min_hypotheses`` systems answered
(``too_few_hypotheses``), when every hypothesis is empty (``empty_text``), or when the mean
pairwise error rate exceeds ``max_disagreement`` (``low_agreement``). ``labels`` keeps every
hypothesis plus ``chosen`` and ``agreement`` (the metric, the mean, the matrix, the chosen
system's mean distance). One hypothesis alone is kept with an agreement of null.
"""

from __future__ import annotations

import time
from collections import Counter

import apache_beam as beam
import jiwer

from funfactory.errors import FunfactoryError
from funfactory.eval.scoring import pairwise_agreement
from funfactory.eval.textnorm import scoring_tokens
from funfactory.pipelines.common.rejects import reject_row
from funfactory.pipelines.label.config import VoteConfig


def rover(hypotheses: dict[str, str], pivot: str, language: str | None) -> str:
    """Word-level majority vote over hypotheses aligned to the ``pivot`` system (ties: pivot).

    Each other hypothesis is aligned to the pivot's tokens (jiwer); at each pivot position the
    token written by most systems wins (a deletion votes for nothing); a token inserted after a
    position is kept when a strict majority of systems inserted it.
    """
    base = scoring_tokens(hypotheses[pivot], language)
    votes = [Counter({token: 1}) for token in base]
    inserts: list[Counter] = [Counter() for _ in range(len(base) + 1)]
    others = [s for s in hypotheses if s != pivot]
    for system in others:
        hyp = scoring_tokens(hypotheses[system], language)
        if not base or not hyp:
            for v in votes:
                v[""] += 1
            continue
        out = jiwer.process_words(" ".join(base), " ".join(hyp))
        for chunk in out.alignments[0]:
            if chunk.type in ("equal", "substitute"):
                for k in range(chunk.ref_end_idx - chunk.ref_start_idx):
                    votes[chunk.ref_start_idx + k][hyp[chunk.hyp_start_idx + k]] += 1
            elif chunk.type == "delete":
                for k in range(chunk.ref_start_idx, chunk.ref_end_idx):
                    votes[k][""] += 1
            else:
                inserts[chunk.ref_start_idx][" ".join(hyp[chunk.hyp_start_idx:
                                                          chunk.hyp_end_idx])] += 1
    systems = len(hypotheses)
    words: list[str] = []
    for position in range(len(base) + 1):
        if inserts[position]:
            phrase, n = inserts[position].most_common(1)[0]
            if n * 2 > systems:
                words.append(phrase)
        if position < len(base):
            best = max(votes[position].values())
            winner = base[position] if votes[position][base[position]] == best else \
                votes[position].most_common(1)[0][0]
            if winner:
                words.append(winner)
    return " ".join(words)


METHODS = ("medoid", "rover")


class Vote(beam.DoFn):
    def __init__(self, cfg: VoteConfig):
        if cfg.method not in METHODS:
            raise FunfactoryError(f"vote.method {cfg.method!r}: use one of {METHODS}")
        self.cfg = cfg

    def setup(self):
        scoring_tokens("warm up the ITN grammars 1", "en")
        scoring_tokens("预热 一", "zh")

    def _reject(self, unit, p, reason, detail):
        beam.metrics.Metrics.counter("vote", "dropped").inc()
        row = reject_row(unit=unit, key=p["key"], stage="vote", reason=reason, detail=detail,
                         uri=p["uri"], offset=p["offset"], duration=p["duration"])
        row["stage_seconds"] = p["stage_seconds"]
        return unit, "reject", row

    def process(self, item):
        unit, kind, p = item
        if kind != "segment":
            yield item
            return
        started = time.perf_counter()
        answered = {name: label["text"] for name, label in p["labels"].items()
                    if "error" not in label}
        language = p["language"] or None
        if len(answered) < max(1, self.cfg.min_hypotheses):
            yield self._reject(unit, p, "too_few_hypotheses",
                               f"{len(answered)} of {len(p['labels'])} systems answered "
                               f"(vote.min_hypotheses {self.cfg.min_hypotheses})")
            return
        if not any(scoring_tokens(text, language) for text in answered.values()):
            yield self._reject(unit, p, "empty_text", "every system wrote nothing")
            return
        agreement = pairwise_agreement(answered, language=language)
        chosen = agreement.most_agreed()
        p["labels"]["chosen"] = chosen
        if len(answered) > 1:
            p["labels"]["agreement"] = {
                "metric": agreement.metric, f"mean_pairwise_{agreement.metric}":
                    round(agreement.mean, 4),
                "chosen_mean_distance": round(agreement.mean_disagreement(chosen), 4),
                "systems": list(agreement.systems),
                "matrix": [[round(v, 4) for v in row] for row in agreement.matrix]}
        else:
            p["labels"]["agreement"] = None
        if self.cfg.method == "rover" and len(answered) > 2:
            p["label_text"] = rover(answered, chosen, language)
            p["labels"]["rover"] = p["label_text"]
        else:
            p["label_text"] = answered[chosen]
        p["stage_seconds"]["vote"] = time.perf_counter() - started
        if len(answered) > 1 and agreement.mean > self.cfg.max_disagreement:
            yield self._reject(unit, p, "low_agreement",
                               f"mean pairwise {agreement.metric} {agreement.mean:.3f} > "
                               f"vote.max_disagreement {self.cfg.max_disagreement}; "
                               f"chosen {chosen}: {answered[chosen][:200]!r}")
            return
        beam.metrics.Metrics.counter("vote", "kept").inc()
        yield item

