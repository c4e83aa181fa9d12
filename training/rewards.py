"""The four rewards of Fun-ASR's GRPO stage (report section 4.4.2), each a small function.

- **R1, ASR accuracy**: ``1 - WER`` (CER for Chinese, mixed error rate for code-switched text,
  after the shared normalisation of :mod:`funfactory.eval.scoring`), clipped to [0, 1].
- **R2, keyword accuracy and recall**: with the utterance's keywords (annotated, or extracted from
  the reference by a callable such as the LLM backend of ``synth/llm``), the mean of keyword
  accuracy (the share of keyword occurrences written in the hypothesis that the reference has:
  an inserted keyword lowers it) and keyword recall (the share of the reference's keyword
  occurrences the hypothesis has). Both are 1.0 when there is nothing to count, so a hypothesis
  that rightly writes no keyword scores 1.0; an utterance without keywords scores R2 = 0.
- **R3, hallucination suppression**: ``-alpha * hallucinated tokens / max(reference tokens,
  length_floor)``, floored at ``-max_penalty``. The floor (8 tokens) keeps the penalty
  proportional to the span's length on short and empty references: on noise-only input "thank
  you" costs less than a whole sentence, so a group of hallucinated samples still ranks the
  shorter ones higher. Hallucinated spans are found with regular expressions
  (:mod:`funfactory.eval.repetition`): repetition loops beyond what the reference itself repeats,
  and any text at all where the input is noise only (empty reference).
- **R4, language match**: when the hypothesis's language (by script,
  :func:`funfactory.eval.textnorm.detect_language`) shares nothing with the source's, the final
  reward is -1 and the other three are ignored; otherwise ``R = R1 + R2 + R3``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from funfactory.eval.hotword_metrics import count_occurrences
from funfactory.eval.repetition import excess_repetition_tokens
from funfactory.eval.scoring import score
from funfactory.eval.textnorm import detect_language, scoring_tokens

KeywordExtractor = Callable[[str], Sequence[str]]

LANGUAGE_MISMATCH_REWARD = -1.0
# Script of each language the reward can judge: Han-script languages read as "zh" and
# Latin-script ones as "en" to detect_language. Others (ja, ko, ...) are never called mismatched.
HAN_LANGUAGES = frozenset({"zh", "yue", "cmn", "wuu"})
LATIN_LANGUAGES = frozenset({"en", "de", "fr", "es", "it", "pt", "nl", "id", "ms", "vi", "tr",
                             "pl", "sv", "da", "no", "fi", "cs", "ro", "hu"})


@dataclass
class RewardConfig:
    hallucination_alpha: float = 1.0  # R3 per hallucinated token, relative to the reference length
    hallucination_length_floor: int = 8  # ... or to this many tokens when the reference is shorter
    hallucination_max_penalty: float = 1.0  # R3 is never below -this
    keyword_weight: float = 1.0  # scales R2 (the report adds it unweighted)


@dataclass
class RewardBreakdown:
    r1_accuracy: float
    r2_keywords: float
    r3_hallucination: float
    language_match: bool
    total: float
    error_rate: float
    hallucinated_tokens: int
    keyword_recall: float | None = None
    keyword_accuracy: float | None = None

    @property
    def r4_language(self) -> float:
        return 0.0 if self.language_match else LANGUAGE_MISMATCH_REWARD

    @property
    def hallucinated(self) -> bool:
        return self.hallucinated_tokens > 0

    def as_dict(self) -> dict:
        out = asdict(self)
        out["r4_language"] = self.r4_language
        return out


def accuracy_reward(hypothesis: str, reference: str, language: str | None = None) -> tuple[float, float]:
    """R1 = clip(1 - error rate, 0, 1); also returns the error rate."""
    rate = score([reference], [hypothesis], language=language).utterances[0].rate
    return min(1.0, max(0.0, 1.0 - rate)), rate


@dataclass
class KeywordScore:
    recall: float
    accuracy: float

    @property
    def reward(self) -> float:
        return 0.5 * (self.recall + self.accuracy)


def keyword_score(hypothesis: str, reference: str, keywords: Sequence[str],
                  language: str | None = None) -> KeywordScore:
    """Keyword recall and accuracy of one hypothesis (occurrences in the scoring form)."""
    ref_tokens = scoring_tokens(reference, language)
    hyp_tokens = scoring_tokens(hypothesis, language)
    in_reference = in_hypothesis = recalled = 0
    for keyword in dict.fromkeys(keywords):
        word = scoring_tokens(keyword, language)
        r, h = count_occurrences(ref_tokens, word), count_occurrences(hyp_tokens, word)
        in_reference, in_hypothesis, recalled = in_reference + r, in_hypothesis + h, recalled + min(r, h)
    recall = recalled / in_reference if in_reference else 1.0
    accuracy = recalled / in_hypothesis if in_hypothesis else 1.0
    return KeywordScore(recall, accuracy)


def keyword_reward(hypothesis: str, reference: str, keywords: Sequence[str],
                   language: str | None = None) -> float:
    """R2: mean of keyword accuracy and recall; 0.0 when the utterance has no keywords."""
    if not keywords:
        return 0.0
    return keyword_score(hypothesis, reference, keywords, language).reward


def hallucinated_tokens(hypothesis: str, reference: str, language: str | None = None) -> int:
    """Length of the hallucinated spans: all of the output on noise-only input (empty reference),
    otherwise the repetition loops the reference does not have."""
    hyp_tokens = scoring_tokens(hypothesis, language)
    if not scoring_tokens(reference, language):
        return len(hyp_tokens)
    return excess_repetition_tokens(hypothesis, reference, language)


def hallucination_reward(hypothesis: str, reference: str, language: str | None = None,
                         alpha: float = 1.0, max_penalty: float = 1.0,
                         length_floor: int = 8) -> tuple[float, int]:
    """R3 = -alpha * hallucinated tokens / max(reference tokens, length_floor), floored at
    -max_penalty."""
    spans = hallucinated_tokens(hypothesis, reference, language)
    reference_length = max(1, length_floor, len(scoring_tokens(reference, language)))
    return -min(max_penalty, alpha * spans / reference_length), spans


def _scripts(language: str) -> set[str] | None:
    """The scripts ("zh", "en") a language code allows, None when the reward cannot judge it."""
    scripts = set()
    for part in language.split("-"):
        if part in HAN_LANGUAGES:
            scripts.add("zh")
        elif part in LATIN_LANGUAGES:
            scripts.add("en")
        else:
            return None
    return scripts


def language_matches(hypothesis: str, source_language: str | None) -> bool:
    """R4's test: the hypothesis shares a script with the source language.

    A hypothesis with no letters (empty, digits only) matches anything: it says nothing about
    language, and a blank output is right for noise. A code-switched source ("zh-en") accepts
    Chinese, English or mixed output; a Chinese source accepts Chinese with English terms.
    """
    found = detect_language(hypothesis)
    allowed = _scripts(source_language) if source_language else None
    if not found or allowed is None:
        return True
    return bool(set(found.split("-")) & allowed)


@dataclass
class RewardInput:
    """What the reward knows of one utterance besides the hypothesis."""
    reference: str
    language: str | None = None
    keywords: list[str] | None = None  # None: extract with the extractor, if any
    extra: dict = field(default_factory=dict)


def total_reward(hypothesis: str, target: RewardInput, config: RewardConfig | None = None,
                 extractor: KeywordExtractor | None = None) -> RewardBreakdown:
    """R4 = -1 when the language is wrong; otherwise R1 + R2 + R3 (section 4.4.2)."""
    config = config or RewardConfig()
    language = target.language or None
    keywords = target.keywords
    if keywords is None:
        keywords = list(extractor(target.reference)) if extractor and target.reference else []
    r1, rate = accuracy_reward(hypothesis, target.reference, language)
    r2 = config.keyword_weight * keyword_reward(hypothesis, target.reference, keywords, language)
    r3, spans = hallucination_reward(hypothesis, target.reference, language,
                                     config.hallucination_alpha, config.hallucination_max_penalty,
                                     config.hallucination_length_floor)
    match = language_matches(hypothesis, language)
    total = r1 + r2 + r3 if match else LANGUAGE_MISMATCH_REWARD
    kw = keyword_score(hypothesis, target.reference, keywords, language) if keywords else None
    return RewardBreakdown(r1, r2, r3, match, total, rate, spans,
                           kw.recall if kw else None, kw.accuracy if kw else None)


class RewardFunction:
    """Scores the G hypotheses of each utterance; extracts an utterance's keywords once."""

    def __init__(self, config: RewardConfig | None = None,
                 extractor: KeywordExtractor | None = None):
        self.config = config or RewardConfig()
        self.extractor = extractor
        self._extracted: dict[str, list[str]] = {}

    def keywords_for(self, target: RewardInput) -> list[str]:
        if target.keywords is not None:
            return target.keywords
        if self.extractor is None or not target.reference:
            return []
        if target.reference not in self._extracted:
            self._extracted[target.reference] = list(self.extractor(target.reference))
        return self._extracted[target.reference]

    def __call__(self, hypotheses: Sequence[str], target: RewardInput) -> list[RewardBreakdown]:
        resolved = RewardInput(target.reference, target.language, self.keywords_for(target),
                               target.extra)
        return [total_reward(h, resolved, self.config) for h in hypotheses]
