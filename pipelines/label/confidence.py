"""Label confidence without a reference: each system's error on a segment, the reliability-weighted
label choice, and the chosen label's estimated error rate (Fun-ASR report sections 3.1 and 4.4.3).

Three layers, each a small fitted map shipped in ``label_confidence.json`` (fitted on the
project's calibration set by ``python -m funfactory.pipelines.label.fit_confidence``, and on
nothing else):

1. **System error** :func:`system_error`: each hypothesis' expected error rate from that system's
   own scores and the text itself -- Whisper's average log-probability, no-speech probability and
   compression ratio; pocketsphinx's lattice posterior per second and path score; and for every
   system the speaking rate (tokens per second against the language's usual rate) and the
   longest back-to-back n-gram repeat. A logistic map per system and language (falling back to
   the system family, then to a constant for systems it never saw).
2. **Weighted choice** :func:`choose`: each system votes with its log-odds of being right,
   ``log((1 - e) / e)`` clipped to [``MIN_WEIGHT``, ``MAX_WEIGHT``], so a system that is mostly
   wrong on a segment loses both its vote and its veto (confidence-weighted voting in the spirit
   of ROVER's confidence scores). The label is the weighted medoid: the hypothesis with the
   smallest weighted mean error against all hypotheses (its own counting as zero); exact ties go
   to the heavier system, then to the system name -- never to configuration order.
3. **Label error** :func:`estimate`: the chosen label's estimated error rate (WER for ``en``, CER
   for ``zh``, mixed error rate for ``zh-en``), from its disagreement with the other systems
   averaged by their weights, its disagreement with the nearest other hypothesis, its posterior
   error under the EM's slot model (:func:`funfactory.pipelines.label.reliability.posterior_error`,
   with every system's error on the segment: about half a disagreement between two equally
   reliable systems) and the chosen system's own error on the segment (what the others cannot
   see: errors they share); systems wrong more often than right on the segment are left out. A
   logistic map over their logarithms followed by an isotonic map, so that over buckets the
   estimate matches the measured error. A segment with one system gets its
   language's isotonic map of that system's own error (fitted on every calibration hypothesis taken
   alone).

Job-level reliability (:func:`job_reliability`): over many segments of one language, each
system's error rate from how it agrees with the others, by the Dawid-Skene EM of
:mod:`funfactory.pipelines.label.reliability`. Its prior is what the calibration set says about
the system *on these segments*: the mean over the job's segments of the system's own estimate
(layer 1, the fitted map of its own scores), put on the EM's scale by a fitted logit-linear map
(``reliability_prior``: on the calibration jobs, the EM's rate from agreement alone against that
mean), not one rate averaged over every condition of the calibration set. A job of a few clean
segments then starts where the EM ends on a whole clean job (Whisper's log-probability and
no-speech probability say the speech is clean), not from a mean that 0 dB clips pull up to
18-21 %; a large job's rate is set by its agreement, whatever the prior.
Passed to :func:`choose` as a :class:`JobReliability`, it sets each system's error on every
segment of the job, moved from the job rate by that segment's own evidence
(:meth:`JobReliability.combine`, with the fitted ``own_evidence_weight``): a system that is
mostly wrong on this job loses its vote and its veto on every segment, whatever its own scores
say. The run report writes it per language.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from funfactory.errors import FunfactoryError
from funfactory.eval.scoring import pairwise_agreement
from funfactory.eval.textnorm import scoring_tokens
from funfactory.pipelines.label.filters import longest_repeat
from funfactory.pipelines.label.reliability import (NONE, PRIOR_SLOTS, JobReliability, align,
                                                    dawid_skene, logit, posterior_error, sigmoid)

MODEL_PATH = Path(__file__).with_name("label_confidence.json")
MIN_WEIGHT, MAX_WEIGHT = 0.02, 6.0
# tokens per second of ordinary read speech (words for en; characters, or characters plus English
# words, for zh and zh-en): the rate feature is the distance from these, in log units
TYPICAL_RATE = {"en": 2.6, "zh": 4.5, "zh-en": 4.0}
FAMILY_FEATURES = {
    "whisper": ("avg_logprob", "no_speech_prob", "compression_ratio", "rate_deviation",
                "repeats", "empty"),
    "pocketsphinx": ("log_posterior_per_second", "score", "rate_deviation", "repeats", "empty"),
    "text": ("rate_deviation", "repeats", "empty"),
}
# the label map reads agreement, and how error-prone the chosen system is on this segment of this
# job (:func:`system_error`: the job's rate, moved by its own scores' distance from their job
# mean). Raw own scores shift between TTS and recorded speech (Whisper's log-probability is higher
# on clean TTS); the job rate and the distance from the job mean do not. The chosen system's error
# carries what agreement cannot see: the errors the systems share (on the calibration set the two
# Whisper systems agreeing word for word are still 2-4 % WER off the reference), and how noisy
# the job is, which agreement alone confuses (one word of disagreement looks the same at 10 dB and
# at 0 dB). Each enters in log units (+ ``LOG_FLOOR``): the keep decision lives among small error
# rates, where a rate's ratio, not its difference, matters
LABEL_FEATURES = ("log_weighted_disagreement", "log_nearest_disagreement", "log_posterior_error",
                  "log_chosen_error")
LOG_FLOOR = 0.01
# a system estimated wrong more often than right on a segment says nothing about its label: it is
# left out of the label's features (it has lost its vote and its veto in the choice already)
VOTER_MAX_ERROR = 0.5


def family(label: dict) -> str:
    """Which scores a hypothesis carries: Whisper's, pocketsphinx's, or only its text."""
    if "avg_logprob" in label:
        return "whisper"
    if "log_posterior" in label:
        return "pocketsphinx"
    return "text"


def own_features(label: dict, language: str, duration: float) -> dict[str, float]:
    """The evidence one hypothesis carries about itself (module docstring, layer 1)."""
    tokens = scoring_tokens(label.get("text", ""), language or None)
    seconds = max(duration, 0.5)
    rate = len(tokens) / seconds
    typical = TYPICAL_RATE.get(language or "en", TYPICAL_RATE["en"])
    repeats, _ = longest_repeat(tokens)
    return {
        "avg_logprob": float(label.get("avg_logprob", 0.0)),
        "no_speech_prob": float(label.get("no_speech_prob", 0.0)),
        "compression_ratio": min(float(label.get("compression_ratio", 1.0)), 4.0),
        "log_posterior_per_second": max(float(label.get("log_posterior", 0.0)) / seconds, -50.0),
        "score": float(label.get("score", 0.0)),
        "rate_deviation": abs(math.log((rate + 0.1) / typical)),
        "repeats": math.log(max(repeats, 1)),
        "empty": float(not tokens),
    }


@dataclass(frozen=True)
class Logistic:
    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def __call__(self, values: dict[str, float]) -> float:
        x = [(values[f] - m) / s for f, m, s in zip(self.features, self.mean, self.scale)]
        z = self.intercept + sum(c * v for c, v in zip(self.coef, x))
        return sigmoid(z)

    @classmethod
    def from_json(cls, d: dict) -> Logistic:
        return cls(tuple(d["features"]), tuple(d["mean"]), tuple(d["scale"]), tuple(d["coef"]),
                   float(d["intercept"]))


@dataclass(frozen=True)
class Isotonic:
    x: tuple[float, ...]
    y: tuple[float, ...]

    def __call__(self, value: float) -> float:
        return float(np.interp(value, self.x, self.y))


@dataclass(frozen=True)
class ConfidenceModel:
    """The fitted maps of ``label_confidence.json`` (module docstring)."""

    systems: dict[str, Logistic]
    default_system_error: float
    label: Logistic
    label_isotonic: Isotonic
    single_isotonic: dict[str, Isotonic]  # by language; "" for any other language
    max_estimated_wer: float  # for a language the fit never saw
    max_estimated_wer_by_language: dict[str, float]
    version: str
    own_evidence_weight: float  # how far a segment's own scores move it off the job rate
    reliability_prior: tuple[float, float]  # intercept, slope: logit job mean own -> EM prior

    def system_model(self, system: str, label: dict, language: str) -> Logistic | None:
        fam = family(label)
        for key in (f"{system}/{language}", f"{fam}/{language}", fam):
            if key in self.systems:
                return self.systems[key]
        return None

    @classmethod
    def from_json(cls, d: dict) -> ConfidenceModel:
        return cls(systems={k: Logistic.from_json(v) for k, v in d["systems"].items()},
                   default_system_error=float(d["default_system_error"]),
                   label=Logistic.from_json(d["label"]),
                   label_isotonic=Isotonic(tuple(d["label_isotonic"]["x"]),
                                           tuple(d["label_isotonic"]["y"])),
                   single_isotonic={language: Isotonic(tuple(m["x"]), tuple(m["y"]))
                                    for language, m in d["single_isotonic"].items()},
                   max_estimated_wer=float(d["max_estimated_wer"]),
                   max_estimated_wer_by_language={
                       k: float(v) for k, v in d["max_estimated_wer_by_language"].items()},
                   version=str(d["version"]),
                   own_evidence_weight=float(d["own_evidence_weight"]),
                   reliability_prior=(float(d["reliability_prior"]["intercept"]),
                                      float(d["reliability_prior"]["slope"])))

    def threshold(self, language: str) -> float:
        """The fitted keep threshold for ``language`` (what ``vote.max_estimated_wer`` None
        means)."""
        return self.max_estimated_wer_by_language.get(language or "", self.max_estimated_wer)

    def prior_error(self, mean_own: float) -> float:
        """The EM's prior for a system whose own estimates average ``mean_own`` over the job."""
        intercept, slope = self.reliability_prior
        z = intercept + slope * logit(mean_own)
        return sigmoid(z)


@lru_cache(maxsize=4)
def load_model(path: str = "") -> ConfidenceModel:
    """The shipped model, or the one at ``path`` (``vote.confidence_model``)."""
    where = Path(path) if path else MODEL_PATH
    try:
        return ConfidenceModel.from_json(json.loads(where.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise FunfactoryError(f"label confidence model {where} does not exist: fit one with "
                              "`python -m funfactory.pipelines.label.fit_confidence`") from None
    except (KeyError, ValueError, TypeError) as e:
        raise FunfactoryError(f"label confidence model {where} is not a fitted model "
                              f"({type(e).__name__}: {e}); refit it with "
                              "`python -m funfactory.pipelines.label.fit_confidence`") from None


def system_error(model: ConfidenceModel, system: str, label: dict, language: str,
                 duration: float, job: JobReliability = NONE) -> float:
    """Expected error rate of one system's hypothesis from its own evidence (layer 1), moved by
    the job's estimate of that system where there is one (module docstring)."""
    fitted = model.system_model(system, label, language)
    own = model.default_system_error if fitted is None else \
        fitted(own_features(label, language, duration))
    return job.combine(language, system, own, model.own_evidence_weight)


def weight(error: float) -> float:
    """A system's vote: its log-odds of being right, clipped (layer 2)."""
    return min(max(-logit(error), MIN_WEIGHT), MAX_WEIGHT)


@dataclass(frozen=True)
class Choice:
    chosen: str
    texts: dict[str, str]
    language: str
    systems: tuple[str, ...]
    matrix: tuple[tuple[float, ...], ...]  # matrix[i][j]: error of hypothesis j against i
    metric: str
    errors: dict[str, float]  # each system's own estimated error
    weights: dict[str, float]
    expected_loss: dict[str, float]  # weighted mean error of each hypothesis against all

    def distance(self, reference: str, hypothesis: str) -> float:
        return self.matrix[self.systems.index(reference)][self.systems.index(hypothesis)]

    @property
    def mean_pairwise(self) -> float:
        n = len(self.systems)
        pairs = [self.matrix[i][j] for i in range(n) for j in range(n) if i != j]
        return sum(pairs) / len(pairs) if pairs else 0.0


def choose(hypotheses: dict[str, dict], language: str, duration: float,
           model: ConfidenceModel, job: JobReliability = NONE) -> Choice:
    """The reliability-weighted medoid over the hypotheses that answered (layer 2)."""
    texts = {s: label.get("text", "") for s, label in sorted(hypotheses.items())}
    errors = {s: system_error(model, s, hypotheses[s], language, duration, job) for s in texts}
    weights = {s: weight(e) for s, e in errors.items()}
    agreement = pairwise_agreement(texts, language=language or None)
    systems = agreement.systems
    total = sum(weights.values())
    loss = {c: sum(weights[s] * agreement.matrix[systems.index(s)][systems.index(c)]
                   for s in systems) / total for c in systems}
    chosen = min(systems, key=lambda s: (round(loss[s], 9), -weights[s], s))
    return Choice(chosen, texts, language, systems, agreement.matrix, agreement.metric, errors,
                  weights, loss)


def label_features(choice: Choice) -> dict[str, float]:
    """The evidence about the chosen label (module docstring, layer 3), from the other systems
    that are right more often than wrong on the segment (all the others when none is)."""
    others = [s for s in choice.systems if s != choice.chosen]
    others = [s for s in others if choice.errors[s] < VOTER_MAX_ERROR] or others
    total = sum(choice.weights[s] for s in others)
    texts = {s: choice.texts[s] for s in others + [choice.chosen]}
    raw = {
        "weighted_disagreement": sum(choice.weights[s] * min(choice.distance(s, choice.chosen),
                                                             1.5) for s in others) / total,
        "nearest_disagreement": min(min(choice.distance(s, choice.chosen), 1.5) for s in others),
        "posterior_error": min(posterior_error(
            align(texts, choice.chosen, choice.language or None), choice.chosen,
            choice.errors), 1.5),
        "chosen_error": choice.errors[choice.chosen],
    }
    return {f"log_{k}": math.log(v + LOG_FLOOR) for k, v in raw.items()}


def estimate(choice: Choice, model: ConfidenceModel, language: str) -> float:
    """The chosen label's estimated error rate (layer 3)."""
    if len(choice.systems) == 1:
        single = model.single_isotonic
        return single.get(language, single[""])(choice.errors[choice.chosen])
    return model.label_isotonic(model.label(label_features(choice)))


def job_reliability(segments: list[dict], model: ConfidenceModel, source: dict,
                    prior_slots: float = PRIOR_SLOTS) -> JobReliability:
    """Per language, each system's error rate over ``segments`` (dicts with ``language``,
    ``duration`` and ``labels``: system -> hypothesis dict) by the Dawid-Skene EM, its prior
    (worth ``prior_slots`` slots) read from the mean of its own per-segment estimates, which is
    kept beside the rate (module docstring). ``source`` says where the segments came
    from; it is kept with the figures."""
    by_language: dict[str, list[dict]] = {}
    for segment in segments:
        by_language.setdefault(segment["language"] or "", []).append(segment)
    languages = {}
    for language, part in sorted(by_language.items()):
        aligned, own = [], {}
        for segment in part:
            answered = {s: v for s, v in segment["labels"].items() if "error" not in v}
            if not answered:
                continue
            choice = choose(answered, language, segment["duration"], model)
            aligned.append(align(choice.texts, choice.chosen, language or None))
            for system in answered:
                own.setdefault(system, []).append(choice.errors[system])
        means = {system: float(np.mean(values)) for system, values in own.items()}
        table = dawid_skene(aligned, {s: model.prior_error(m) for s, m in means.items()},
                            prior_slots)
        for system, figures in table.items():
            figures["mean_own_estimate"] = round(means[system], 6)
        languages[language] = table
    return JobReliability(languages, source)
