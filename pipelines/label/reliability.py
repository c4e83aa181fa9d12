"""Each ASR system's error rate on a job, estimated without references (Fun-ASR report sections
3.1 and 4.4.3): a Dawid-Skene EM over aligned words.

The hypotheses of a segment are aligned to a pivot (:func:`align`: each other hypothesis is
aligned to the pivot's tokens; a *slot* is a pivot token, or a gap between pivot tokens where
some system inserted words). In every slot the true token is unknown; system ``s`` writes it
with probability ``1 - e_s`` and writes one of the ``K`` other candidates of that slot (the
distinct tokens the systems wrote there, "nothing" included) with probability ``e_s / K`` each,
``e_s`` capped at chance (``K / (K + 1)``, :func:`slot_posterior`) in the E-step; the M-step's
share of wrong slots is not capped (pocketsphinx's stays near its 90 % at 0 dB).
:func:`dawid_skene` alternates

- E: the posterior of each slot's true token given every system's token and the current rates;
- M: ``e_s`` = the expected share of slots where ``s`` wrote something else, with a Beta prior
  of ``prior_slots`` pseudo-slots at ``prior[s]`` (the label job passes what the calibration set's
  maps say about ``s`` from its own scores on the job's segments,
  :func:`funfactory.pipelines.label.confidence.job_reliability`),

until the rates move less than ``TOLERANCE``. The figure reported (``estimated_error``) is the
WER-like rate at the end: expected wrong slots over expected true tokens (a slot's true token may be
"nothing": an insertion gap); ``slot_error`` is the EM's own parameter. Only slots that two or more
systems saw carry information: a language with one system keeps its prior. With two systems a
disagreement cannot be pinned on either by counting alone: the prior (each system's own scores on
the job, through the calibration set's maps) settles who is more often right.

The weights of the vote (:func:`funfactory.pipelines.label.confidence.choose`) combine this job rate
with each hypothesis' own evidence (:meth:`JobReliability.combine`): in log-odds, the job rate (the
EM's parameter, held near the prior where the job says little) plus the hypothesis' own estimate's
distance from that estimate's job mean, damped by a weight fitted on the calibration set (how much
one segment's own scores should move it off the job rate). :func:`posterior_error` is the same model
on one segment: the expected error rate of a hypothesis given the others and their per-segment
rates, a feature of the label confidence. Where the job estimate comes from (a first pass over a
sample of the job's segments): :mod:`funfactory.pipelines.label.sample_pass`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jiwer

from funfactory.eval.textnorm import scoring_tokens

MIN_RATE, MAX_RATE = 0.002, 0.98
TOLERANCE = 1e-6
MAX_ITERATIONS = 200
PRIOR_SLOTS = 100.0  # the prior weighs as much as 100 slots (about ten segments)


@dataclass(frozen=True)
class Aligned:
    """One segment's hypotheses aligned to its pivot: ``slots[k][i]`` is the token (or the
    inserted phrase; "" for nothing) system ``systems[i]`` wrote in slot ``k``, and
    ``token_slot[k]`` says whether slot ``k`` is a pivot token (else an insertion gap)."""

    systems: tuple[str, ...]
    slots: tuple[tuple[str, ...], ...]
    token_slot: tuple[bool, ...]


def align(texts: dict[str, str], pivot: str, language: str | None) -> Aligned:
    """Align every hypothesis to the ``pivot`` system's tokens (jiwer's word alignment)."""
    systems = tuple(sorted(texts))
    base = scoring_tokens(texts[pivot], language)
    tokens = {s: [""] * len(base) for s in systems}
    inserted = {s: [""] * (len(base) + 1) for s in systems}
    tokens[pivot] = list(base)
    for system in systems:
        if system == pivot:
            continue
        hyp = scoring_tokens(texts[system], language)
        if not base:
            inserted[system][0] = " ".join(hyp)
            continue
        if not hyp:
            continue
        out = jiwer.process_words(" ".join(base), " ".join(hyp))
        for chunk in out.alignments[0]:
            if chunk.type in ("equal", "substitute"):
                for k in range(chunk.ref_end_idx - chunk.ref_start_idx):
                    tokens[system][chunk.ref_start_idx + k] = hyp[chunk.hyp_start_idx + k]
            elif chunk.type == "insert":
                inserted[system][chunk.ref_start_idx] = " ".join(
                    hyp[chunk.hyp_start_idx:chunk.hyp_end_idx])
    slots, token_slot = [], []
    for position in range(len(base) + 1):
        gap = tuple(inserted[s][position] for s in systems)
        if any(gap):
            slots.append(gap)
            token_slot.append(False)
        if position < len(base):
            slots.append(tuple(tokens[s][position] for s in systems))
            token_slot.append(True)
    return Aligned(systems, tuple(slots), tuple(token_slot))


def slot_posterior(tokens: tuple[str, ...], rates: tuple[float, ...]) -> dict[str, float]:
    """The posterior of a slot's true token, given each system's token and error rate. A rate
    is capped at chance among the slot's candidates (``K / (K + 1)``): a system that is right no
    more often than a random pick carries no evidence. Uncapped, a garbage system (pocketsphinx
    at 0 dB, 95 %) that happens to write the same word as one of two others would count against
    that word (its writing a wrong candidate is likelier than its being right), and the EM
    ranked the better Whisper system below the worse on that job."""
    candidates = sorted(set(tokens))
    k = max(len(candidates) - 1, 1)
    chance = k / (k + 1)
    log_post = {}
    for candidate in candidates:
        log_post[candidate] = sum(math.log(1 - min(e, chance)) if t == candidate else
                                  math.log(min(e, chance) / k) for t, e in zip(tokens, rates))
    top = max(log_post.values())
    weights = {c: math.exp(v - top) for c, v in log_post.items()}
    total = sum(weights.values())
    return {c: w / total for c, w in weights.items()}


def _clip(rate: float) -> float:
    return min(max(rate, MIN_RATE), MAX_RATE)


def dawid_skene(segments: list[Aligned], prior: dict[str, float],
                prior_slots: float = PRIOR_SLOTS) -> dict[str, dict]:
    """Each system's error rate over ``segments`` (module docstring): ``{system:
    {"estimated_error", "slot_error", "slots", "segments", "prior_error", "iterations"}}``.
    ``prior`` maps every system to its prior rate (its starting point too)."""
    systems = sorted({s for a in segments for s in a.systems} | set(prior))
    rates = {s: _clip(prior[s]) for s in systems}
    informative = [a for a in segments if len(a.systems) > 1]
    slots = {s: 0 for s in systems}
    seen = {s: 0 for s in systems}
    for a in informative:
        for s in a.systems:
            seen[s] += 1
            slots[s] += len(a.slots)
    iterations = 0
    for iterations in range(1, MAX_ITERATIONS + 1):
        errors, _ = _expected_errors(informative, rates)
        updated = {s: _clip((prior_slots * prior[s] + errors[s]) / (prior_slots + slots[s]))
                   for s in systems}
        moved = max(abs(updated[s] - rates[s]) for s in systems) if systems else 0.0
        rates = updated
        if moved < TOLERANCE:
            break
    errors, tokens = _expected_errors(informative, rates)
    return {s: {"estimated_error": round(errors[s] / tokens[s], 6) if tokens[s] else
                round(rates[s], 6),
                "slot_error": round(rates[s], 6), "slots": slots[s], "segments": seen[s],
                "prior_error": round(prior[s], 6), "iterations": iterations} for s in systems}


def _expected_errors(segments: list[Aligned], rates: dict[str, float]):
    """Per system, the expected number of slots it got wrong and of true tokens it saw."""
    errors = dict.fromkeys(rates, 0.0)
    tokens = dict.fromkeys(rates, 0.0)
    for a in segments:
        current = tuple(rates[s] for s in a.systems)
        for slot in a.slots:
            posterior = slot_posterior(slot, current)
            real = 1.0 - posterior.get("", 0.0)
            for s, t in zip(a.systems, slot):
                errors[s] += 1.0 - posterior[t]
                tokens[s] += real
    return errors, tokens


def posterior_error(aligned: Aligned, system: str, rates: dict[str, float]) -> float:
    """The expected error rate of ``system``'s hypothesis under the slot posteriors: expected
    wrong slots over the expected number of true tokens."""
    index = aligned.systems.index(system)
    current = tuple(_clip(rates[s]) for s in aligned.systems)
    wrong = tokens = 0.0
    for slot in aligned.slots:
        posterior = slot_posterior(slot, current)
        wrong += 1.0 - posterior[slot[index]]
        tokens += 1.0 - posterior.get("", 0.0)
    return wrong / max(tokens, 1.0)


def logit(p: float, eps: float = 1e-3) -> float:
    p = min(max(p, eps), 1 - eps)
    return math.log(p / (1 - p))


def sigmoid(z: float) -> float:
    """The inverse of :func:`logit`, with ``z`` clipped to +-30 so it never overflows."""
    return 1 / (1 + math.exp(-max(min(z, 30.0), -30.0)))


@dataclass(frozen=True)
class JobReliability:
    """Per language, each system's job rate and the job mean of its own per-segment estimate
    (``{language: {system: {"estimated_error": e, "mean_own_estimate": m, ...}}}``), and where
    the figures came from."""

    languages: dict
    source: dict

    def combine(self, language: str, system: str, own: float, own_weight: float) -> float:
        """A hypothesis' error rate from the job rate and its own per-segment estimate ``own``:
        ``logit e = logit(job rate) + own_weight * (logit(own) - logit(job mean of own))``.
        Without a job estimate (or one from no shared slots) ``own`` is returned unchanged."""
        figures = self.languages.get(language or "", {}).get(system)
        if not figures or not figures["slots"] or figures.get("mean_own_estimate") is None:
            return own
        z = logit(figures["slot_error"]) + own_weight * (
            logit(_clip(own)) - logit(_clip(figures["mean_own_estimate"])))
        return sigmoid(z)

    def as_dict(self) -> dict:
        return {"languages": self.languages, "source": self.source}

    @classmethod
    def from_dict(cls, d: dict) -> JobReliability:
        return cls(dict(d["languages"]), dict(d["source"]))


NONE = JobReliability({}, {"segments": 0})
