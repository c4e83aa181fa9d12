"""Error rates: WER, CER and the mixed error rate, corpus-level and per utterance.

Fun-ASR report section 6: WER for space-delimited languages, CER for Chinese, and a mixed error
rate for code-switched Chinese-English (Han characters and English words as tokens), all after
the shared normalisation of :mod:`funfactory.eval.textnorm`. Alignment and counting are jiwer's
(token lists joined by spaces, so a Han character is one "word" to jiwer).

Metrics and their tokens (``textnorm.tokens``):

- ``wer``: words split on spaces;
- ``cer``: one token per Han character, one per Latin word or written number (the WeNet
  ``compute-wer`` convention for Chinese test sets: an English word inside Chinese text counts
  once, not per letter);
- ``mer``: the same tokens as ``cer``, reported under its own name for code-switched test sets.

``metric="auto"`` picks ``wer`` for ``en``, ``cer`` for ``zh`` and ``yue``, ``mer`` for ``zh-en``.

Empty texts (after normalisation), defined explicitly:

- empty reference, empty hypothesis: 0 errors, 0 reference tokens, rate 0.0 (a noise-only
  sample correctly left blank);
- empty reference, non-empty hypothesis: every hypothesis token is an insertion; the utterance
  rate is 1.0 (the whole output is wrong) and the utterance counts as a hallucination; its
  insertions still enter the corpus error count;
- non-empty reference, empty hypothesis: every reference token is a deletion, rate 1.0.

Corpus rate = (S + D + I) / N over all utterances; when the corpus has no reference tokens at all,
it is 0.0 without insertions and 1.0 with any.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import jiwer

from funfactory.errors import FunfactoryError
from funfactory.eval.textnorm import normalize_for_scoring, tokens

METRICS = ("wer", "cer", "mer")
_METRIC_TOKEN_LANGUAGE = {"wer": "en", "cer": "zh", "mer": "zh"}
_LANGUAGE_METRIC = {"en": "wer", "zh": "cer", "yue": "cer", "cmn": "cer", "zh-en": "mer"}


def metric_for_language(language: str | None) -> str:
    """The report's metric for a test set in ``language`` (space-delimited languages: WER)."""
    return _LANGUAGE_METRIC.get(language or "", "wer" if language else "mer")


def _resolve_metric(metric: str, language: str | None) -> str:
    if metric == "auto":
        return metric_for_language(language)
    if metric not in METRICS:
        raise FunfactoryError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)} or auto")
    return metric


def error_rate(errors: int, reference_tokens: int) -> float:
    """errors / reference tokens, with the empty-reference rule of the module docstring."""
    if reference_tokens:
        return errors / reference_tokens
    return 0.0 if errors == 0 else 1.0


@dataclass(frozen=True)
class UtteranceScore:
    key: str
    reference: str  # scoring form
    hypothesis: str  # scoring form
    reference_tokens: int
    hypothesis_tokens: int
    hits: int
    substitutions: int
    deletions: int
    insertions: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        return error_rate(self.errors, self.reference_tokens)

    @property
    def hallucination(self) -> bool:
        """Output where the reference is empty (noise-only audio)."""
        return self.reference_tokens == 0 and self.hypothesis_tokens > 0


@dataclass(frozen=True)
class CorpusScore:
    metric: str
    utterances: tuple[UtteranceScore, ...] = field(repr=False)
    reference_tokens: int
    hits: int
    substitutions: int
    deletions: int
    insertions: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        return error_rate(self.errors, self.reference_tokens)

    @property
    def hallucinations(self) -> int:
        return sum(u.hallucination for u in self.utterances)

    def summary(self) -> dict:
        return {"metric": self.metric, "rate": self.rate, "utterances": len(self.utterances),
                "reference_tokens": self.reference_tokens, "hits": self.hits,
                "substitutions": self.substitutions, "deletions": self.deletions,
                "insertions": self.insertions, "hallucinations": self.hallucinations}


def _count(chunks) -> tuple[int, int, int, int]:
    hits = subs = dels = ins = 0
    for chunk in chunks:
        if chunk.type == "equal":
            hits += chunk.ref_end_idx - chunk.ref_start_idx
        elif chunk.type == "substitute":
            subs += chunk.ref_end_idx - chunk.ref_start_idx
        elif chunk.type == "delete":
            dels += chunk.ref_end_idx - chunk.ref_start_idx
        else:
            ins += chunk.hyp_end_idx - chunk.hyp_start_idx
    return hits, subs, dels, ins


def _pairs(references, hypotheses, keys) -> list[tuple[str, str, str]]:
    if isinstance(references, Mapping):
        if not isinstance(hypotheses, Mapping):
            raise FunfactoryError("references are keyed: pass hypotheses as a dict with the same keys")
        missing = [k for k in references if k not in hypotheses]
        if missing:
            raise FunfactoryError(
                f"{len(missing)} reference key(s) have no hypothesis (first: {missing[0]!r}); "
                "score with an empty string for a system that produced nothing")
        return [(k, references[k], hypotheses[k]) for k in references]
    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise FunfactoryError(
            f"{len(references)} references but {len(hypotheses)} hypotheses: pass one per utterance")
    keys = list(keys) if keys is not None else [str(i) for i in range(len(references))]
    return list(zip(keys, references, hypotheses))


def score(references: Sequence[str] | Mapping[str, str],
          hypotheses: Sequence[str] | Mapping[str, str],
          language: str | None = None, metric: str = "auto",
          keys: Iterable[str] | None = None) -> CorpusScore:
    """Score hypotheses against references after the shared normalisation.

    ``references`` and ``hypotheses`` are parallel sequences (``keys`` optional) or dicts keyed
    by utterance. ``language`` picks the metric when ``metric="auto"`` (None: mixed error rate,
    which equals WER on text with no Han characters).
    """
    metric = _resolve_metric(metric, language)
    token_language = _METRIC_TOKEN_LANGUAGE[metric]
    pairs = _pairs(references, hypotheses, keys)
    normalised = [(k, normalize_for_scoring(r), normalize_for_scoring(h)) for k, r, h in pairs]
    token_lists = [(tokens(r, token_language), tokens(h, token_language)) for _, r, h in normalised]
    if pairs:
        output = jiwer.process_words([" ".join(r) for r, _ in token_lists],
                                     [" ".join(h) for _, h in token_lists])
        alignments = output.alignments
    else:
        alignments = []
    utterances = []
    for (key, ref, hyp), (ref_tokens, hyp_tokens), chunks in zip(normalised, token_lists, alignments):
        hits, subs, dels, ins = _count(chunks)
        utterances.append(UtteranceScore(key, ref, hyp, len(ref_tokens), len(hyp_tokens),
                                         hits, subs, dels, ins))
    return CorpusScore(
        metric=metric, utterances=tuple(utterances),
        reference_tokens=sum(u.reference_tokens for u in utterances),
        hits=sum(u.hits for u in utterances),
        substitutions=sum(u.substitutions for u in utterances),
        deletions=sum(u.deletions for u in utterances),
        insertions=sum(u.insertions for u in utterances))


def wer(references, hypotheses, **kwargs) -> CorpusScore:
    return score(references, hypotheses, metric="wer", **kwargs)


def cer(references, hypotheses, **kwargs) -> CorpusScore:
    return score(references, hypotheses, metric="cer", **kwargs)


def mixed_error_rate(references, hypotheses, **kwargs) -> CorpusScore:
    return score(references, hypotheses, metric="mer", **kwargs)


@dataclass(frozen=True)
class PairwiseAgreement:
    """Error rates between every ordered pair of systems' hypotheses for one utterance.

    ``matrix[i][j]`` is the error rate of ``systems[j]`` scored against ``systems[i]`` as the
    reference (diagonal 0). ``mean`` is the mean over all ordered pairs ``i != j`` (0.0 for fewer
    than two systems): the agreement figure of section 3.1 / 4.4.3, low when systems agree.
    """

    systems: tuple[str, ...]
    matrix: tuple[tuple[float, ...], ...]
    mean: float
    metric: str

    def mean_disagreement(self, system: str) -> float:
        """Mean error rate of ``system`` against the others, both directions."""
        i = self.systems.index(system)
        others = [j for j in range(len(self.systems)) if j != i]
        if not others:
            return 0.0
        return sum(self.matrix[i][j] + self.matrix[j][i] for j in others) / (2 * len(others))

    def most_agreed(self) -> str:
        """The system closest to all others (the medoid): the label chosen by agreement.
        Ties go to the system listed first."""
        if not self.systems:
            raise FunfactoryError("no hypotheses to choose from")
        return min(self.systems, key=self.mean_disagreement)

    def as_dict(self) -> dict:
        return {"systems": list(self.systems), "matrix": [list(r) for r in self.matrix],
                f"mean_pairwise_{self.metric}": self.mean}


def pairwise_agreement(hypotheses: Mapping[str, str], language: str | None = None,
                       metric: str = "auto") -> PairwiseAgreement:
    """Agreement between several systems' hypotheses of one utterance (pseudo-label voting)."""
    metric = _resolve_metric(metric, language)
    systems = tuple(hypotheses)
    size = len(systems)
    matrix = [[0.0] * size for _ in range(size)]
    ordered = list(itertools.permutations(range(size), 2))
    if ordered:
        result = score([hypotheses[systems[i]] for i, _ in ordered],
                       [hypotheses[systems[j]] for _, j in ordered], metric=metric)
        for (i, j), utterance in zip(ordered, result.utterances):
            matrix[i][j] = utterance.rate
    mean = sum(matrix[i][j] for i, j in ordered) / len(ordered) if ordered else 0.0
    return PairwiseAgreement(systems, tuple(tuple(r) for r in matrix), mean, metric)
