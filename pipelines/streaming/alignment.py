"""Word timing for a label from a real aligner (section 5.1 needs to know which words the visible
audio supports).

The aligner is an ASR system with word timestamps (faster-whisper's cross-attention alignment,
through `funfactory.asr`). Its words rarely equal the label's tokens ("nine" vs "9",
punctuation, a misheard word), so both sides are put in scoring form (`eval.textnorm`) and matched
by an edit-distance alignment (difflib opcodes); each label token then gets the end time of the
word it is aligned with, as an equal or as a one-for-one substitution ("nine" heard as "9").
`matched` counts only equal tokens: it measures whether the label fits the audio at all. A label token that the aligner did not match inherits the end time of the next
matched token (it is only shown once something after it has been heard), and tokens after the
last match only at the end of the utterance. Nothing is timed by dividing text by duration.

Label tokens are those of the shared tokeniser: each Han character, and each run of other
non-space characters (a Latin word with its punctuation, a written number).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from funfactory.eval.runs import HAN_CHARS
from funfactory.eval.textnorm import normalize_for_scoring, scoring_tokens

_LABEL_TOKEN_RE = re.compile(f"[{HAN_CHARS}]|[^\\s{HAN_CHARS}]+")


@dataclass(frozen=True)
class LabelToken:
    text: str
    start: int  # character offsets in the label
    end: int
    norm: str  # scoring form; "" for punctuation-only tokens


@dataclass(frozen=True)
class TimedWord:
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Alignment:
    tokens: tuple[LabelToken, ...]
    #: seconds from the start of the utterance after which each token may be shown
    ready_at: tuple[float, ...]
    matched: int  # label tokens (with a scoring form) that equal an aligned word

    @property
    def scored(self) -> int:
        return sum(1 for t in self.tokens if t.norm)

    @property
    def match_rate(self) -> float:
        return self.matched / self.scored if self.scored else 0.0


def label_tokens(text: str) -> list[LabelToken]:
    return [LabelToken(m.group(), m.start(), m.end(), normalize_for_scoring(m.group()))
            for m in _LABEL_TOKEN_RE.finditer(text)]


def _word_pieces(words: list[TimedWord]) -> tuple[list[str], list[float]]:
    """The aligner's words as scoring tokens, each carrying its word's end time (a Chinese word
    of several characters is shown only when the whole word has been heard)."""
    pieces, ends = [], []
    for w in words:
        for piece in scoring_tokens(w.text):
            pieces.append(piece)
            ends.append(float(w.end))
    return pieces, ends


def align_label(text: str, words: list[TimedWord], duration: float) -> Alignment:
    """Give every token of the label `text` the time after which the audio supports it."""
    tokens = label_tokens(text)
    norms: list[str] = []
    owner: list[int] = []  # scoring piece -> label token index
    for i, token in enumerate(tokens):
        for piece in scoring_tokens(token.text) if token.norm else []:
            norms.append(piece)
            owner.append(i)
    pieces, ends = _word_pieces(words)
    piece_time: list[float | None] = [None] * len(norms)
    piece_equal = [False] * len(norms)
    matcher = difflib.SequenceMatcher(a=norms, b=pieces, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        # equal runs, and substitutions of as many pieces as were heard ("nine" heard as "9")
        if op == "equal" or (op == "replace" and a2 - a1 == b2 - b1):
            for k in range(a2 - a1):
                piece_time[a1 + k] = ends[b1 + k]
                piece_equal[a1 + k] = op == "equal"
    token_time: list[float | None] = [None] * len(tokens)
    token_pieces: dict[int, list[int]] = {}
    for p, i in enumerate(owner):
        token_pieces.setdefault(i, []).append(p)
    matched = 0
    for i, members in token_pieces.items():
        if all(piece_time[p] is not None for p in members):
            token_time[i] = max(piece_time[p] for p in members)
        matched += all(piece_equal[p] for p in members)
    ready = [duration] * len(tokens)
    upcoming = duration
    for i in range(len(tokens) - 1, -1, -1):
        if token_time[i] is not None:
            upcoming = min(upcoming, token_time[i])
        ready[i] = upcoming
    for i, token in enumerate(tokens):  # punctuation shows with the word before it
        if not token.norm and i > 0:
            ready[i] = ready[i - 1]
    running = 0.0
    for i in range(len(ready)):  # monotone: a token is never shown before one before it
        running = max(running, ready[i])
        ready[i] = min(running, duration)
    return Alignment(tuple(tokens), tuple(ready), matched)


class WordAligner:
    """ASR backends with word timestamps, one per language (loaded on first use)."""

    def __init__(self, kinds_by_language: dict[str, str]):
        self.kinds = dict(kinds_by_language)
        self.backends: dict[str, object] = {}

    def kind_for(self, language: str) -> str:
        return self.kinds.get(language) or self.kinds.get(language.split("-")[0]) \
            or self.kinds["*"]

    def words(self, audio, language: str) -> tuple[str, list[TimedWord]]:
        from funfactory.asr.registry import BackendSpec, build_backend

        kind = self.kind_for(language)
        if kind not in self.backends:
            self.backends[kind] = build_backend(BackendSpec(kind=kind)).load()
        backend = self.backends[kind]
        transcript = backend.transcribe(audio, language or None, word_timestamps=True)
        return backend.name, [TimedWord(w.text, w.start, w.end) for w in transcript.words or ()]
