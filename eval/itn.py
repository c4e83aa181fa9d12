"""Inverse text normalisation (spoken -> written form), code-switch aware.

Fun-ASR report section 3.1: pseudo-labels go through ITN so that training targets carry written
numbers, dates and times ("三点半" -> "3:30", "twenty five percent" -> "25 %"). Section 6 scores
after the same step, so a system that writes "3:30" and a reference that says "三点半" agree.

The rules are WeTextProcessing's compiled grammars, run by the ``wetext`` runtime (no pynini).
Chinese grammars pass English through untouched and the English grammars ignore Chinese, so the
text is split into script runs (:func:`funfactory.eval.runs.split_runs`) and each run goes to the
normaliser of its language.

Scope: a run goes through its grammar only when it holds a number (a Chinese numeral character;
an English cardinal or ordinal word). Every written form these grammars produce (cardinals,
ordinals, decimals, fractions, percentages, money, measures, dates, times) starts from a number,
so nothing is lost; the gate makes text without numbers ten times faster to normalise and keeps
the English grammar's non-numeric rewrites out ("john at gmail dot com" ->
"sendittojohn@gmail.com" glues words; "doctor" -> "dr." is a style choice, not a number).
A run that does hold a number gets the whole grammar, those rewrites included.

Known wetext output quirks, repaired here after the Chinese grammar runs:

- a date followed by a time is glued: ``二零二五年三月十五号下午三点半`` -> ``2025/03/153:30p.m.``;
  a space is put between the date and the following number;
- times spoken with 上午/下午 come back as ``3:30p.m.`` inside Chinese text; they are written
  back as ``下午3:30`` / ``上午10:20``, the usual written Chinese form;
- the English grammar writes a space before punctuation and ``%`` ("25 % , OK"); it is removed;
- the ideographic zero ``〇`` is not read as a digit (``二〇二五年`` -> ``二〇25年``); it is mapped
  to ``零`` before the grammar runs.
"""

from __future__ import annotations

import re
from functools import lru_cache

from funfactory.errors import MissingAssetError
from funfactory.eval.runs import split_runs

_DATE_GLUED_RE = re.compile(r"(?<![\d/])(\d{4}/\d{2}/\d{2}|\d{2}/\d{2})(?=\d)")
_MERIDIEM_RE = re.compile(r"(\d{1,2}:\d{2}(?::\d{2})?)\s*([ap])\.m\.")
_MERIDIEM_ZH = {"a": "上午", "p": "下午"}
_SPACE_BEFORE_MARK_RE = re.compile(r" +(?=[,.!?;:%)])")
# A run is sent to its grammar only if it holds a number; see "Scope" in the module docstring.
_CHINESE_NUMERAL_RE = re.compile("[零〇一二三四五六七八九十百千万亿两幺壹贰叁肆伍陆柒捌玖拾佰仟]")
_ENGLISH_NUMBER_WORD_RE = re.compile(
    r"\b(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen"
    r"|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy"
    r"|eighty|ninety|hundred|thousand|million|billion|trillion|first|second|third|fourth|fifth"
    r"|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|\w+teenth|\w+tieth|hundredth"
    r"|thousandth|millionth)\b", re.IGNORECASE)


@lru_cache(maxsize=None)
def normalizer(language: str):
    """The cached wetext ITN normaliser for ``language`` ("zh" or "en")."""
    try:
        from wetext import Normalizer
    except ImportError as e:
        raise MissingAssetError(
            "inverse text normalisation needs the `wetext` package (0.1.8): "
            "run `bash scripts/setup.sh` or install it into .venv") from e
    return Normalizer(lang=language, operator="itn")


def _normalize(language: str, run: str) -> str:
    """wetext's ITN of `run`; wetext asserts when its tokeniser reduces a run to nothing (stray
    quotes and brackets around a number word, as ASR hypotheses have): such a run stays as it is."""
    try:
        return normalizer(language).normalize(run)
    except AssertionError:
        return run


def _repair_chinese(text: str) -> str:
    text = _DATE_GLUED_RE.sub(r"\1 ", text)
    return _MERIDIEM_RE.sub(lambda m: _MERIDIEM_ZH[m.group(2)] + m.group(1), text)


@lru_cache(maxsize=1 << 16)
def itn_chinese(run: str) -> str:
    """ITN of one Han run, with the quirks listed in the module docstring repaired."""
    core = run.strip()
    if not _CHINESE_NUMERAL_RE.search(core):
        return run
    written = _normalize("zh", core.replace("\u3007", "零"))
    return _repair_chinese(written)


@lru_cache(maxsize=1 << 16)
def itn_english(run: str) -> str:
    """ITN of one Latin run ("twenty three" -> "23")."""
    core = run.strip()
    if not _ENGLISH_NUMBER_WORD_RE.search(core):
        return run
    return _SPACE_BEFORE_MARK_RE.sub("", _normalize("en", core))


def inverse_normalize(text: str) -> str:
    """Spoken-form ``text`` to written form, each script run by its own grammar.

    Run boundaries keep one space where the input had whitespace there; callers that want
    Chinese-style spacing (none between Han and Latin) apply it afterwards (see textnorm).
    """
    pieces = []
    for run in split_runs(text):
        if run.kind == "han":
            written = itn_chinese(run.text)
        elif run.kind == "latin":
            written = itn_english(run.text)
        else:
            written = run.text
        lead = " " if run.text[:1].isspace() else ""
        trail = " " if run.text[-1:].isspace() and run.text.strip() else ""
        pieces.append(lead + written.strip() + trail if run.text.strip() else run.text)
    return "".join(pieces)
