"""Hotword retrieval by edit distance against the CTC hypothesis (Fun-ASR report section 5.5).

Each hotword becomes a sequence of units: for Chinese, pinyin with tones split into initial and
tonal final (`通义` -> `t ong1 y i4`, so a wrong tone or a wrong initial costs one unit, not a whole
syllable); for other languages, the units the CTC head writes (`ctc_units`): the LLM tokenizer's
word pieces of the lowercased words for a head over word pieces, as the report's (`Grafana Loki`
-> `graf ana lo ki`), and letters for a head over characters, such as the `cpu` size's. A head
over characters misspells ("nord vica" for Nordvika), and a misspelt word's byte-level BPE pieces
rarely share anything with the real word's: on 64 hotword training sentences that the `cpu`
model's CTC head transcribed, word pieces retrieved 10 of 87 true hotwords and letters 57 (the
default budget, 2.0 candidates an utterance). The CTC hypothesis is converted the same way, and a hotword is
a candidate when some substring of the hypothesis is within `max_error_rate * len(hotword)` unit
edits of it (approximate substring matching: Sellers' dynamic programme, free start and end in the
hypothesis, one row per hotword unit, vectorised over the hypothesis and over all candidate
hotwords of the same length at once).

Scanning every hotword for every utterance is too slow for large vocabularies, so an inverted index
maps unit q-grams (bigrams; unigrams for one-unit hotwords) to hotword ids, and only hotwords that
share enough distinct q-grams with the hypothesis are verified (np.bincount over the posting
lists). The bound is the q-gram lemma: a substring within k edits of an m-unit pattern holds at
least m + 1 - q(k + 1) of the pattern's m - q + 1 q-gram positions, since one edit destroys at most
q of them. Counted over distinct q-grams (a repeated bigram is posted once), that is
`distinct - q * k`. A hotword whose bound is at most 0 (short hotwords, such as three units with a
one-edit budget) can match without sharing any q-gram, so it is always verified. The index
therefore returns exactly what a scan of every hotword returns. The best `top_k` go into the LLM
prompt.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from funfactory.errors import FunfactoryError

HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
WordPieces = Callable[[str], list[str]]


def pinyin_units(han: str) -> list[str]:
    """Initial and tonal final of each character's pinyin (pypinyin, neutral tone = 5)."""
    from pypinyin import Style, lazy_pinyin
    from pypinyin.contrib.tone_convert import to_finals_tone3, to_initials

    units = []
    for syllable in lazy_pinyin(han, style=Style.TONE3, neutral_tone_with_five=True):
        initial = to_initials(syllable, strict=False)
        if initial:
            units.append(initial)
        units.append(to_finals_tone3(syllable, strict=False, neutral_tone_with_five=True))
    return units


def tokenizer_word_pieces(tokenizer) -> WordPieces:
    """Word pieces of one lowercased word from a Hugging Face (byte-level BPE) tokenizer."""
    def pieces(word: str) -> list[str]:
        tokens = tokenizer.convert_ids_to_tokens(tokenizer.encode(word, add_special_tokens=False))
        return [t.replace("\u0120", "") for t in tokens if t.replace("\u0120", "")]
    return pieces


def letters(word: str) -> list[str]:
    """The letters of one lowercased word: the units of a CTC head over characters."""
    return list(word)


def ctc_units(model) -> WordPieces:
    """Hotword units in the units `model`'s CTC head writes: letters for a head over characters
    (bytes), the LLM tokenizer's word pieces otherwise."""
    return letters if model.ctc_vocab.characters_only else tokenizer_word_pieces(model.tokenizer)


def text_units(text: str, word_pieces: WordPieces) -> list[str]:
    """Units of mixed text in reading order: pinyin units for Han runs, word pieces elsewhere."""
    units: list[str] = []
    position = 0
    for han in HAN_RUN.finditer(text):
        units.extend(_latin_units(text[position:han.start()], word_pieces))
        units.extend(pinyin_units(han.group()))
        position = han.end()
    units.extend(_latin_units(text[position:], word_pieces))
    return units


def _latin_units(text: str, word_pieces: WordPieces) -> list[str]:
    return [p for word in WORD.findall(text.lower()) for p in word_pieces(word)]


def approximate_substring_distance(pattern: Sequence[int], text: np.ndarray) -> tuple[int, int]:
    """Fewest edits turning `pattern` into some substring of `text`, and where that substring ends.

    Sellers' algorithm: row i holds, for each end position j, the cost of matching pattern[:i]
    to a substring ending at j (any start is free). The in-row insertion recurrence
    D[j] = min(E[j], D[j-1] + 1) is solved for the whole row at once as a running minimum of
    E[k] - k, plus j.
    """
    distances, ends = batched_substring_distance(np.asarray([pattern]), np.asarray(text))
    return int(distances[0]), int(ends[0])


def batched_substring_distance(patterns: np.ndarray, text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`approximate_substring_distance` for many patterns of one length at once: (C, m) -> (C,), (C,)."""
    count, length = patterns.shape
    columns = np.arange(len(text) + 1, dtype=np.int32)
    row = np.zeros((count, len(text) + 1), dtype=np.int32)
    best = np.empty_like(row)
    for i in range(length):
        diagonal = row[:, :-1] + (patterns[:, i : i + 1] != text[None, :])
        best[:, 0] = i + 1
        np.minimum(diagonal, row[:, 1:] + 1, out=best[:, 1:])
        row = np.minimum.accumulate(best - columns, axis=1) + columns
    return row.min(axis=1), row.argmin(axis=1)


def levenshtein(a: Sequence, b: Sequence) -> int:
    """Plain edit distance between two sequences (used for CER in tests and benches)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


@dataclass
class HotwordMatch:
    hotword: str
    distance: int
    error_rate: float  # distance / number of hotword units
    end_unit: int  # where the matched substring ends in the hypothesis' units
    num_units: int


class HotwordIndex:
    def __init__(self, hotwords: Iterable[str], word_pieces: WordPieces,
                 max_error_rate: float = 0.34):
        self.word_pieces = word_pieces
        self.max_error_rate = max_error_rate
        self._unit_ids: dict[str, int] = {}
        self.hotwords: list[str] = []
        self._sequences: list[np.ndarray] = []
        postings: dict[tuple[int, ...], list[int]] = {}
        for hotword in dict.fromkeys(h.strip() for h in hotwords):
            if not hotword:
                continue
            units = text_units(hotword, word_pieces)
            if not units:
                raise FunfactoryError(
                    f"hotword {hotword!r} has no letters, digits or Chinese characters to match on: "
                    "drop it from the hotword list")
            ids = np.array([self._unit_id(u) for u in units], dtype=np.int64)
            index = len(self.hotwords)
            self.hotwords.append(hotword)
            self._sequences.append(ids)
            for key in set(self._keys(ids)):
                postings.setdefault(key, []).append(index)
        self._postings = {k: np.array(v, dtype=np.int32) for k, v in postings.items()}
        self._needed = np.array([self._shared_needed(s) for s in self._sequences], dtype=np.int64)
        self._always_verified = np.nonzero(self._needed <= 0)[0]
        self._lengths = np.array([len(s) for s in self._sequences], dtype=np.int64)
        self._by_length: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for length in np.unique(self._lengths).tolist():
            members = np.nonzero(self._lengths == length)[0]
            self._by_length[length] = (members, np.stack([self._sequences[i] for i in members]))

    def __len__(self) -> int:
        return len(self.hotwords)

    def _unit_id(self, unit: str) -> int:
        return self._unit_ids.setdefault(unit, len(self._unit_ids))

    @staticmethod
    def _keys(ids: np.ndarray) -> list[tuple[int, ...]]:
        if len(ids) == 1:
            return [(int(ids[0]),)]
        return [(int(a), int(b)) for a, b in zip(ids[:-1], ids[1:])]

    def edit_budget(self, num_units: int) -> int:
        """The most unit edits a match of a hotword this long may have."""
        return math.floor(self.max_error_rate * num_units + 1e-9)

    def _shared_needed(self, ids: np.ndarray) -> int:
        """Distinct q-grams an in-budget match must share with the hypothesis (q-gram lemma)."""
        q = 1 if len(ids) == 1 else 2
        return len(set(self._keys(ids))) - q * self.edit_budget(len(ids))

    def hypothesis_ids(self, hypothesis: str) -> np.ndarray:
        """The hypothesis as unit ids; units no hotword uses get -1 (they can never match)."""
        units = text_units(hypothesis, self.word_pieces)
        return np.array([self._unit_ids.get(u, -1) for u in units], dtype=np.int64)

    def shortlist(self, text: np.ndarray) -> np.ndarray:
        """Hotword ids that may match within budget: those sharing enough q-grams with the
        hypothesis, and those whose bound allows a match without any."""
        keys = {(int(a), int(b)) for a, b in zip(text[:-1], text[1:])}
        keys.update((int(u),) for u in text)
        lists = [self._postings[k] for k in keys if k in self._postings]
        if not lists:
            return self._always_verified
        counts = np.bincount(np.concatenate(lists), minlength=len(self.hotwords))
        return np.nonzero(counts >= self._needed)[0]

    def _verify(self, candidates: np.ndarray, text: np.ndarray) -> list[HotwordMatch]:
        """Run the substring edit distance for every candidate, all hotwords of one length at once."""
        matches = []
        candidates = np.asarray(candidates, dtype=np.int64)
        for length, (members, patterns) in self._by_length.items():
            chosen = candidates[self._lengths[candidates] == length]
            if len(chosen) == 0:
                continue
            rows = np.searchsorted(members, chosen)
            distances, ends = batched_substring_distance(patterns[rows], text)
            budget = self.edit_budget(length)
            for index, distance, end in zip(chosen[distances <= budget], distances[distances <= budget],
                                            ends[distances <= budget]):
                matches.append(HotwordMatch(self.hotwords[index], int(distance),
                                            int(distance) / length, int(end), length))
        matches.sort(key=lambda m: (m.error_rate, -m.num_units, m.hotword))
        return matches

    def retrieve(self, hypothesis: str, top_k: int = 10) -> list[HotwordMatch]:
        """The best `top_k` hotwords whose units appear in the hypothesis within the error budget."""
        text = self.hypothesis_ids(hypothesis)
        if len(text) == 0 or not self.hotwords:
            return []
        return self._verify(self.shortlist(text), text)[:top_k]

    def retrieve_brute_force(self, hypothesis: str, top_k: int = 10) -> list[HotwordMatch]:
        """The same search without the index: every hotword verified (the anchor for benches)."""
        text = self.hypothesis_ids(hypothesis)
        if len(text) == 0:
            return []
        return self._verify(np.arange(len(self.hotwords)), text)[:top_k]
