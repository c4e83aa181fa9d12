"""Hotword recall, precision, accuracy and false alarms (Fun-ASR report section 6, Table 6).

A hotword occurs in a text where its token sequence appears in the text's token sequence, both
in the shared scoring form (:mod:`funfactory.eval.textnorm`): Han characters and Latin words as
tokens, so "go" does not match inside "google" and "Kubernetes" matches "kubernetes".

Per utterance and hotword, with ``r`` occurrences in the reference and ``h`` in the hypothesis:

- recalled = min(r, h); false alarms = max(0, h - r) (a hotword written where the reference
  lacks it, or written more often than spoken);
- **recall** = recalled / reference occurrences (the report's hotword recall);
- **precision** = recalled / hypothesis occurrences (1.0 when the hypothesis has none);
- **accuracy** = share of the utterances that involve a hotword (in the reference or in the
  hypothesis) whose hotword occurrences are exactly right: every reference occurrence recalled
  and none inserted. This is the sentence-level reading of "hotword accuracy"; recall alone
  rewards a system that sprays hotwords everywhere, accuracy and false alarms expose it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from funfactory.errors import FunfactoryError
from funfactory.eval.textnorm import scoring_tokens


def count_occurrences(text_tokens: Sequence[str], hotword_tokens: Sequence[str]) -> int:
    """Non-overlapping occurrences of ``hotword_tokens`` in ``text_tokens``."""
    size = len(hotword_tokens)
    if size == 0:
        return 0
    count = i = 0
    target = list(hotword_tokens)
    while i + size <= len(text_tokens):
        if list(text_tokens[i:i + size]) == target:
            count += 1
            i += size
        else:
            i += 1
    return count


def _ratio(part: int, whole: int, empty: float) -> float:
    return part / whole if whole else empty


@dataclass
class HotwordCounts:
    reference_occurrences: int = 0
    hypothesis_occurrences: int = 0
    recalled: int = 0
    false_alarms: int = 0

    @property
    def recall(self) -> float:
        return _ratio(self.recalled, self.reference_occurrences, 1.0)

    @property
    def precision(self) -> float:
        return _ratio(self.recalled, self.hypothesis_occurrences, 1.0)

    def add(self, r: int, h: int) -> None:
        self.reference_occurrences += r
        self.hypothesis_occurrences += h
        self.recalled += min(r, h)
        self.false_alarms += max(0, h - r)


@dataclass
class HotwordResult(HotwordCounts):
    utterances_with_hotwords: int = 0
    utterances_correct: int = 0
    per_hotword: dict[str, HotwordCounts] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return _ratio(self.utterances_correct, self.utterances_with_hotwords, 1.0)

    def summary(self) -> dict:
        return {"hotword_recall": self.recall, "hotword_precision": self.precision,
                "hotword_accuracy": self.accuracy, "hotword_false_alarms": self.false_alarms,
                "hotword_reference_occurrences": self.reference_occurrences,
                "hotword_utterances": self.utterances_with_hotwords}


def hotword_metrics(references: Sequence[str], hypotheses: Sequence[str],
                    hotwords: Iterable[str] | Sequence[Iterable[str]],
                    language: str | None = None) -> HotwordResult:
    """Hotword metrics over parallel ``references`` and ``hypotheses``.

    ``hotwords`` is one list for the whole set, or one list per utterance (the hotword prompt
    each utterance was decoded with).
    """
    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise FunfactoryError(
            f"{len(references)} references but {len(hypotheses)} hypotheses: pass one per utterance")
    hotwords = list(hotwords)
    per_utterance = hotwords and not isinstance(hotwords[0], str)
    if per_utterance and len(hotwords) != len(references):
        raise FunfactoryError(
            f"{len(hotwords)} hotword lists for {len(references)} utterances: pass one list per "
            "utterance, or a single list of strings for the whole set")
    result = HotwordResult()
    for index, (reference, hypothesis) in enumerate(zip(references, hypotheses)):
        ref_tokens = scoring_tokens(reference, language)
        hyp_tokens = scoring_tokens(hypothesis, language)
        involved, correct = False, True
        for hotword in (hotwords[index] if per_utterance else hotwords):
            word_tokens = scoring_tokens(hotword, language)
            r = count_occurrences(ref_tokens, word_tokens)
            h = count_occurrences(hyp_tokens, word_tokens)
            result.add(r, h)
            result.per_hotword.setdefault(hotword, HotwordCounts()).add(r, h)
            if r or h:
                involved = True
                correct = correct and r == h
        if involved:
            result.utterances_with_hotwords += 1
            result.utterances_correct += correct
    return result
