"""Repetition loops in transcripts, found with regular expressions (Fun-ASR sections 4.4.2, 4.4.3).

LLM decoders hallucinate by looping: "thank you thank you thank you thank you ...". The report's
hallucination reward (R3) penalises such spans in proportion to their length, and its RL data
(4.4.3) collects outputs "with repeated phrases" and references with real repetitions. Both use
:func:`repetition_loops` and :func:`excess_repetition_tokens` from here, so the reward and the data
selection agree on what a loop is.

A loop is a unit of 1 to ``MAX_UNIT_TOKENS`` scoring tokens (Han characters and Latin words, from
:func:`funfactory.eval.textnorm.scoring_tokens`) repeated back to back: a one-token unit at least
``MIN_SINGLE_REPEATS`` times ("no no no no"), a longer unit at least ``MIN_PHRASE_REPEATS`` times
("see you see you see you"). Shorter runs ("very very") are ordinary speech. The search is one
regular expression over the tokens joined by spaces, with a back-reference to the unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from funfactory.eval.textnorm import scoring_tokens

MAX_UNIT_TOKENS = 8
MIN_SINGLE_REPEATS = 4
MIN_PHRASE_REPEATS = 3

_LOOP_RE = re.compile(
    r"(?:^|(?<= ))(?:(?P<single>\S+ )(?P=single){%d,}|(?P<phrase>(?:\S+ ){2,%d}?)(?P=phrase){%d,})"
    % (MIN_SINGLE_REPEATS - 1, MAX_UNIT_TOKENS, MIN_PHRASE_REPEATS - 1))


@dataclass(frozen=True)
class RepetitionLoop:
    unit: tuple[str, ...]  # the repeated tokens
    count: int  # how many times the unit occurs back to back
    start: int  # index of the loop's first token

    @property
    def tokens(self) -> int:
        return len(self.unit) * self.count


def _joined(tokens: list[str]) -> str:
    return "".join(t + " " for t in tokens)


def repetition_loops(text: str, language: str | None = None) -> list[RepetitionLoop]:
    """Every repetition loop in ``text`` (scoring form), left to right, non-overlapping."""
    tokens = scoring_tokens(text, language)
    joined = _joined(tokens)
    loops = []
    for match in _LOOP_RE.finditer(joined):
        unit_text = match.group("single") or match.group("phrase")
        unit = tuple(unit_text.split())
        count = len(match.group(0).split()) // len(unit)
        start = len(joined[: match.start()].split())
        loops.append(RepetitionLoop(unit, count, start))
    return loops


def longest_run(tokens: list[str], unit: tuple[str, ...]) -> int:
    """The most back-to-back occurrences of ``unit`` anywhere in ``tokens``."""
    size, best, i = len(unit), 0, 0
    while i + size <= len(tokens):
        run = 0
        while tuple(tokens[i + run * size: i + (run + 1) * size]) == unit:
            run += 1
        best = max(best, run)
        i += max(1, run * size)
    return best


def excess_repetition_tokens(hypothesis: str, reference: str, language: str | None = None) -> int:
    """Tokens of the hypothesis's loops beyond what the reference itself repeats.

    A unit the reference says three times may appear three times in the hypothesis at no cost
    (real repetitions are not hallucinations); every further occurrence counts its tokens, and a
    loop of a unit the reference never repeats counts every occurrence after the first.
    """
    reference_tokens = scoring_tokens(reference, language)
    excess = 0
    for loop in repetition_loops(hypothesis, language):
        allowed = max(1, longest_run(reference_tokens, loop.unit))
        excess += max(0, loop.count - allowed) * len(loop.unit)
    return excess
