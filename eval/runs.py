"""Script runs: split mixed Chinese-English text into Han and Latin stretches.

Code-switched speech (Fun-ASR report, sections 3.1 and 5.4) is normalised per language run:
Chinese ITN grammars leave English untouched and vice versa, so each run goes to its own
normaliser. Scoring (section 6) tokenises Han characters one by one and Latin words whole.

A run is a contiguous slice of the input; the runs of a text concatenate back to it exactly.

- ``latin``: starts and ends with a Latin letter or digit, contains at least one Latin letter,
  and may hold spaces, digits and ASCII punctuation between words ("one point two", "don't",
  "GPT-4 turbo").
  Digits written against a Han character stay with it ("ok 3月": the "3" is Chinese).
- ``han``: everything else that holds at least one Han character (including digits and CJK
  punctuation around it, which the Chinese normaliser expects: "3月十五号").
- ``other``: whitespace, digits or punctuation with no letter of either script.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# CJK Unified Ideographs with extensions A-F, compatibility ideographs, and U+3007 (ideographic zero).
HAN_CHARS = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef\U00030000-\U0003134f"
HAN_RE = re.compile(f"[{HAN_CHARS}]")
LATIN_LETTER_RE = re.compile(r"[A-Za-z\u00c0-\u024f]")
_LATIN_RUN_RE = re.compile(
    r"[A-Za-z0-9\u00c0-\u024f]"
    r"(?:[A-Za-z0-9\u00c0-\u024f'’\-.,:;!?%&+/()\" \t]*[A-Za-z0-9\u00c0-\u024f%])?"
    f"(?![{HAN_CHARS}])")


class Run(NamedTuple):
    kind: str  # "han" | "latin" | "other"
    text: str


def has_han(text: str) -> bool:
    return HAN_RE.search(text) is not None


def has_latin(text: str) -> bool:
    return LATIN_LETTER_RE.search(text) is not None


def _kind(piece: str) -> str:
    if has_han(piece):
        return "han"
    return "other"


def split_runs(text: str) -> list[Run]:
    """Split ``text`` into contiguous Han / Latin / other runs (see module docstring)."""
    runs: list[Run] = []
    position = 0
    for match in _LATIN_RUN_RE.finditer(text):
        if not has_latin(match.group()):
            continue
        if match.start() > position:
            gap = text[position:match.start()]
            runs.append(Run(_kind(gap), gap))
        runs.append(Run("latin", match.group()))
        position = match.end()
    if position < len(text):
        rest = text[position:]
        runs.append(Run(_kind(rest), rest))
    return runs
