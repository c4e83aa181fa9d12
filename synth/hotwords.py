"""Hotword data (Fun-ASR section 5.5): hotword lists from reference transcripts, with distractors.

- :class:`HotwordMiner` takes a sample's hotwords from its reference transcript: names (English
  capitalised words past the sentence start, jieba's person/place/organisation tags for Chinese),
  terms (English words inside Chinese speech, acronyms, words with digits such as "Q3") and rare
  words (Zipf frequency below `rare_zipf` in `wordfreq`'s general English and Chinese word lists:
  about 3 per million words at 3.5).
- :func:`build_hotword_list` adds 0 to hundreds of distractors, drawn from the other samples'
  hotwords (never a word that occurs in this transcript), and shuffles: a model that sees only
  true hotwords learns to insert them.
- :func:`noise_only_hotwords` gives a hotword list for a noise-only sample (empty label): the
  model must learn not to write hotwords that are not spoken.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from funfactory.eval.runs import has_han, split_runs
from funfactory.synth.contextual import keyword_in, match_form

_EN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'\-]*[A-Za-z0-9]|[A-Za-z]")
_SENTENCE_START = re.compile(r"(^|[.!?]\s+)$")
STOPWORDS = frozenset("""a an and are as at be but by can could did do does for from had has have
he her his i if in into is it its just let me my no not of on or our she so that the their them
then there these they this to up us was we were what when where which while who will with would
you your okay yes well also about after again all any because been before being both each few
more most other over same some such than too very""".split())
NAME_TAGS = frozenset({"nr", "ns", "nt", "nz"})  # jieba: person, place, organisation, other proper
CONTENT_TAGS = frozenset("nva")  # jieba: nouns, verbs, adjectives (not numerals or times)


@dataclass
class Hotword:
    text: str
    kind: str  # name | term | rare

    def as_dict(self) -> dict:
        return {"text": self.text, "kind": self.kind}


def _english_words(text: str) -> list[tuple[str, bool]]:
    """(word, at sentence start) for the Latin words of `text`."""
    return [(m.group(), bool(_SENTENCE_START.search(text[:m.start()])))
            for m in _EN_WORD.finditer(text)]


def _chinese_words(text: str) -> list[tuple[str, str]]:
    import jieba.posseg as pseg
    return [(w.word, w.flag) for w in pseg.lcut(text)]


@dataclass
class HotwordMiner:
    """Hotwords of a reference transcript (module docstring): names, terms, rare words."""

    rare_zipf: float = 3.5
    min_rare_chars_en: int = 5
    max_hotwords: int = 8

    def mine(self, text: str) -> list[Hotword]:
        found: dict[str, Hotword] = {}

        def add(word: str, kind: str) -> None:
            word = word.strip(" -'")
            if word and match_form(word) not in {match_form(k) for k in found}:
                found[word] = Hotword(word, kind)

        chinese = has_han(text)
        for run in split_runs(text):
            if run.kind == "latin":
                self._mine_english(run.text, chinese, add)
            elif run.kind == "han":
                for word, tag in _chinese_words(run.text):
                    if len(word) < 2 or not has_han(word):
                        continue
                    if tag in NAME_TAGS:
                        add(word, "name")
                    elif tag[:1] in CONTENT_TAGS and self.rare(word, "zh"):
                        add(word, "rare")
        ranked = sorted(found.values(), key=lambda h: ("name term rare".split().index(h.kind),
                                                       text.find(h.text)))
        return ranked[:self.max_hotwords]

    def rare(self, word: str, language: str) -> bool:
        from wordfreq import zipf_frequency
        return zipf_frequency(word, language) < self.rare_zipf

    def _mine_english(self, run: str, inside_chinese: bool, add) -> None:
        words = _english_words(run)
        if inside_chinese:
            # An English stretch inside Chinese speech is a term as a whole ("cash flow").
            add(run.strip(" ,.;:!?"), "term")
            return
        i = 0
        while i < len(words):
            word, at_start = words[i]
            capital = word[0].isupper() and word.lower() not in STOPWORDS
            if word.isupper() and len(word) >= 2 or any(ch.isdigit() for ch in word):
                add(word, "term")
            elif capital and not at_start:
                j = i + 1  # a run of capitalised words is one name ("Goldman Sachs")
                while j < len(words) and words[j][0][0].isupper() and not words[j][1]:
                    j += 1
                add(" ".join(w for w, _ in words[i:j]), "name")
                i = j
                continue
            elif (len(word) >= self.min_rare_chars_en and word.lower() not in STOPWORDS
                  and self.rare(word, "en")):
                add(word, "rare")
            i += 1


def distractor_count(rng: np.random.Generator, max_distractors: int, zero_share: float = 0.1) -> int:
    """0 with probability `zero_share`, else log-uniform in 1..max_distractors: most lists are
    short, some hold hundreds (section 5.5)."""
    if max_distractors <= 0 or rng.random() < zero_share:
        return 0
    return int(min(max_distractors, math.floor(math.exp(rng.uniform(0, math.log(max_distractors + 1))))))


def build_hotword_list(true_hotwords: Sequence[str], transcript: str, pool: Sequence[str],
                       n_distractors: int, seed: int) -> tuple[list[str], list[str]]:
    """(shuffled hotword list, the distractors in it). Distractors come from `pool` (other
    samples' hotwords), never occur in `transcript` and never repeat."""
    rng = np.random.default_rng(seed)
    taken = {match_form(h) for h in true_hotwords}
    candidates = sorted({p for p in pool if match_form(p) not in taken
                         and not keyword_in(p, transcript)})
    distractors: list[str] = []
    for i in rng.permutation(len(candidates)):
        if len(distractors) >= n_distractors:
            break
        word = candidates[int(i)]
        if match_form(word) in taken:
            continue
        taken.add(match_form(word))
        distractors.append(word)
    hotwords = list(true_hotwords) + distractors
    order = rng.permutation(len(hotwords))
    return [hotwords[int(i)] for i in order], distractors


def noise_only_hotwords(pool: Sequence[str], seed: int, max_hotwords: int = 50) -> list[str]:
    """A hotword list for a sample with no speech: every entry is a distractor."""
    rng = np.random.default_rng(seed)
    count = max(1, distractor_count(rng, max_hotwords, zero_share=0.0))
    words = sorted(set(pool))
    return [words[int(i)] for i in rng.permutation(len(words))[:count]]
