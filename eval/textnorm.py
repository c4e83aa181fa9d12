"""The one text normalisation shared by labelling and scoring.

Fun-ASR report section 3.1 normalises pseudo-labels (ITN) before training, and section 6 scores
"after normalisation". funfactory keeps both in this module so that what a label says and what a
score counts can never drift apart. There are two forms, the second built on the first:

**Label form** (:func:`normalize_label`): what goes into a shard's ``text`` field.

1. Unicode NFKC: full-width letters, digits and punctuation become half-width ("ＧＰＴ４" ->
   "GPT4", "，" -> ",").
2. Traditional -> simplified Chinese (``zhconv``, ``zh-hans``: character level, no regional
   vocabulary swaps).
3. Whitespace collapsed to single spaces, ends stripped.
4. Inverse text normalisation per script run (:mod:`funfactory.eval.itn`): "三点半" -> "3:30",
   "twenty three" -> "23".
5. Chinese spacing: no space next to a Han character ("讨论 Kubernetes" -> "讨论Kubernetes"); one
   space between Latin words.

Case and punctuation are kept: the model is trained to write them.

**Scoring form** (:func:`normalize_for_scoring`): what WER/CER/MER compare, and what the
pseudo-label agreement compares. Steps 1-3, then

4. lower case (before ITN, so "Twenty Three" is read as a number too);
5. ITN, as in the label form;
6. dotted letter abbreviations closed up ("p.m." -> "pm", "u.s." -> "us"); punctuation and
   symbols removed (ASCII and CJK, Unicode categories P* and S*), except where
   they are part of a written number: ``.``, ``:`` and ``/`` between digits ("1.5", "3:30",
   "2025/03/15") and ``%`` after a number ("50%"); thousands commas between digits are dropped
   ("1,000" -> "1000"); an apostrophe inside a Latin word is kept ("don't"); every other mark
   becomes a space;
7. number spelling unified: a leading zero of an hour is dropped ("03:30" -> "3:30"), a space
   before ``%`` is removed ("25 %" -> "25%"), a written ordinal loses its suffix and a date's
   "the ... of" ("the 15th of march" -> "15 march", "march 15th" -> "march 15"), the form ITN
   gives the spoken ordinal ("the fifteenth of march");
8. Chinese spacing as in step 5.

So ``normalize_for_scoring(normalize_label(x)) == normalize_for_scoring(x)``: labelling never
changes what scoring counts (tests/test_textnorm.py checks this).

**Tokens** (:func:`tokens`): for ``en`` (and other space-delimited languages), words split on
spaces (WER). For ``zh``, ``zh-en``, ``yue`` and undetected text, each Han character is a token
and each maximal run of other non-space characters (a Latin word or a written number) is one
token (CER for pure Chinese, mixed error rate for code-switched text).
"""

from __future__ import annotations

import re
import unicodedata

import regex
from functools import lru_cache

from funfactory.eval.itn import inverse_normalize
from funfactory.eval.runs import HAN_CHARS, Run, has_han, has_latin, split_runs

__all__ = [
    "CHARACTER_LANGUAGES",
    "Run",
    "canonical_characters",
    "detect_language",
    "normalize_for_scoring",
    "normalize_label",
    "plain_text",
    "scoring_tokens",
    "split_runs",
    "tokens",
]

#: Languages scored per character for Han script (Latin words still whole tokens).
CHARACTER_LANGUAGES = frozenset({"zh", "zh-en", "yue", "cmn", ""})

_SPACES_RE = re.compile(r"\s+")
_SPACE_NEXT_TO_HAN_RE = re.compile(f"(?<=[{HAN_CHARS}]) | (?=[{HAN_CHARS}])")
_THOUSANDS_COMMA_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_KEEP_BETWEEN_DIGITS = frozenset(".:/")
_MARK_RE = regex.compile(r"[\p{P}\p{S}]")
_HOUR_LEADING_ZERO_RE = re.compile(r"(?<![\d:.])0(\d:\d{2})")
_SPACE_BEFORE_PERCENT_RE = re.compile(r"(?<=\d) %")
_LETTER_ABBREVIATION_RE = re.compile(r"\b(?:[a-z]\.){2,}")
_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|"
           "december")
_ORDINAL_DATE_RE = re.compile(rf"\bthe (\d+)(?:st|nd|rd|th)? of ({_MONTHS})\b")
_ORDINAL_SUFFIX_RE = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b")
_TOKEN_RE = re.compile(f"[{HAN_CHARS}]|[^\\s{HAN_CHARS}]+")


@lru_cache(maxsize=1)
def _zhconv():
    from zhconv import convert
    return convert


def _collapse_spaces(text: str) -> str:
    return _SPACES_RE.sub(" ", text).strip()


def _chinese_spacing(text: str) -> str:
    return _SPACE_NEXT_TO_HAN_RE.sub("", _collapse_spaces(text))


def canonical_characters(text: str) -> str:
    """Steps 1-3 of both forms: NFKC, traditional -> simplified, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    if has_han(text):
        text = _zhconv()(text, "zh-hans")
    return _collapse_spaces(text)


def normalize_label(text: str, language: str | None = None) -> str:
    """Label form of ``text`` (module docstring, steps 1-5). ``language`` is accepted for
    symmetry with :func:`normalize_for_scoring`; the runs decide which grammar applies."""
    return _chinese_spacing(inverse_normalize(canonical_characters(text)))


def plain_text(text: str) -> str:
    """Lower case without punctuation, numbers left as written (no ITN): the form a CTC head over
    characters can hear; the LLM then writes the formatted transcript (section 2)."""
    return _chinese_spacing(_strip_punctuation(canonical_characters(text).lower()))


def _replace_mark(match) -> str:
    text, i = match.string, match.start()
    ch = match.group()
    before = text[i - 1] if i > 0 else ""
    after = text[i + 1] if i + 1 < len(text) else ""
    if ch in _KEEP_BETWEEN_DIGITS and before.isdigit() and after.isdigit():
        return ch
    if ch == "%" and (before.isdigit() or (before == " " and i > 1 and text[i - 2].isdigit())):
        return ch
    if ch in "'’" and before.isalpha() and after.isalpha() and not has_han(before + after):
        return "'"
    return " "


def _strip_punctuation(text: str) -> str:
    return _MARK_RE.sub(_replace_mark, _THOUSANDS_COMMA_RE.sub("", text))


@lru_cache(maxsize=1 << 16)
def normalize_for_scoring(text: str, language: str | None = None) -> str:
    """Scoring form of ``text`` (module docstring, steps 1-8)."""
    written = inverse_normalize(canonical_characters(text).lower())
    written = _LETTER_ABBREVIATION_RE.sub(lambda m: m.group().replace(".", ""), written)
    written = _collapse_spaces(_strip_punctuation(written))
    written = _HOUR_LEADING_ZERO_RE.sub(r"\1", written)
    written = _SPACE_BEFORE_PERCENT_RE.sub("%", written)
    written = _ORDINAL_SUFFIX_RE.sub(r"\1", _ORDINAL_DATE_RE.sub(r"\1 \2", written))
    return _chinese_spacing(written)


def detect_language(text: str) -> str:
    """"zh", "en", "zh-en" (both scripts) or "" (neither: empty, digits, punctuation)."""
    han, latin = has_han(text), has_latin(text)
    if han and latin:
        return "zh-en"
    if han:
        return "zh"
    if latin:
        return "en"
    return ""


def tokens(text: str, language: str | None = None) -> list[str]:
    """Scoring tokens of already normalised ``text`` (module docstring, "Tokens").

    ``language`` None means: detect it from the text.
    """
    if language is None:
        language = detect_language(text)
    if language in CHARACTER_LANGUAGES or has_han(text):
        return _TOKEN_RE.findall(text)
    return text.split()


def scoring_tokens(text: str, language: str | None = None) -> list[str]:
    """:func:`tokens` of :func:`normalize_for_scoring` -- what every metric counts."""
    return tokens(normalize_for_scoring(text, language), language)
