"""Contextual SFT data (Fun-ASR section 4.3): keywords, context pieces, filters, irrelevant mixing,
and long audio split into segments that carry the previous segment's transcript.

The steps, each a function or small class here (the Beam job in `pipelines/context` runs them):

1. :class:`KeywordExtractor`: an LLM lists the transcript's keywords (names, terms, times);
   :func:`check_keywords` keeps only those that really occur in the transcript.
2. :class:`LLMContextWriter`: an LLM writes several short spoken-style context pieces around the
   transcript and its keywords; with no keyword left, the *no-keyword fallback* asks for pieces
   about the topic instead (prompt ``topic``).
3. :func:`filter_pieces`: the keyword-match filter drops a piece that contains none of the
   keywords, and any piece that is empty, too long, a duplicate or a copy of the transcript.
4. :class:`KeywordRetrieval`: a non-LLM generator beside the LLM (the small packaged LLMs rarely
   pass step 3): it retrieves sentences that contain the keywords from *other* transcripts of a
   text pool. Each piece records which generator made it.
5. :func:`sample_irrelevant`: five pieces of other samples (none mentioning this sample's
   keywords) are mixed in, so the model learns to ignore context that does not apply.
6. :func:`segment_recording`: long audio (up to 5 minutes) is cut into segments at utterance
   boundaries; each segment's prompt carries the previous segment's transcript.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np

from funfactory.synth.llm import GenerationParams, LLMClient, Request
from funfactory.synth.llm.prompts import get_prompt

IRRELEVANT_PIECES = 5
MAX_KEYWORD_CHARS = 40
MAX_PIECE_CHARS = 200
GENERATOR_LLM = "llm"
GENERATOR_LLM_TOPIC = "llm-topic"
GENERATOR_RETRIEVAL = "retrieval-keyword"

_SPACES = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")


def match_form(text: str) -> str:
    """The form in which keywords are looked up: NFKC, case-folded, without whitespace (so
    "Kubernetes" matches "讨论 kubernetes" and "讨论Kubernetes" alike)."""
    return _SPACES.sub("", unicodedata.normalize("NFKC", text).casefold())


def keyword_in(keyword: str, text: str) -> bool:
    needle = match_form(keyword)
    return bool(needle) and needle in match_form(text)


def stable_seed(*parts) -> int:
    """A 31-bit seed from any labels (sample key, purpose, base seed): the same labels, the same draw."""
    blob = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") & 0x7FFFFFFF


@dataclass
class KeywordResult:
    keywords: list[str]
    dropped: list[dict] = field(default_factory=list)  # {"keyword", "reason"}
    raw: list | None = None


def check_keywords(candidates: Iterable, transcript: str) -> KeywordResult:
    """Keep the candidates that occur in `transcript`: strings, not too long, not the whole
    transcript (small models copy it), no duplicates. Dropped ones carry their reason."""
    kept, dropped, seen = [], [], set()
    whole = match_form(transcript)
    for candidate in candidates:
        if not isinstance(candidate, str):
            dropped.append({"keyword": str(candidate), "reason": "not_text"})
            continue
        keyword = candidate.strip().strip("\"'“”‘’.,，。")
        form = match_form(keyword)
        if not form:
            reason = "empty"
        elif form in seen:
            reason = "duplicate"
        elif len(keyword) > MAX_KEYWORD_CHARS or len(form) > 0.6 * len(whole):
            reason = "copies_transcript"
        elif form not in whole:
            reason = "not_in_transcript"
        else:
            kept.append(keyword)
            seen.add(form)
            continue
        dropped.append({"keyword": keyword, "reason": reason})
    return KeywordResult(kept, dropped, list(candidates))


def _string_list(value) -> list:
    if isinstance(value, dict):
        value = next((v for v in value.values() if isinstance(v, list)), None)
    if not isinstance(value, list):
        raise ValueError("expected a JSON list")
    return value


class KeywordExtractor:
    """Step 1: LLM keyword extraction, then the occurs-in-transcript check."""

    def __init__(self, llm: LLMClient, style: str = "fewshot", max_tokens: int = 48, seed: int = 0):
        self.llm = llm
        self.template = get_prompt("keywords", style)
        self.params = GenerationParams(temperature=0.0, max_tokens=max_tokens, seed=seed,
                                       stop=self.template.stop)

    def extract(self, transcripts: Sequence[str]) -> list[KeywordResult]:
        requests = [self.template.render(t) for t in transcripts]
        values = self.llm.generate_json(requests, self.params, json_prefix=self.template.json_prefix,
                                        validate=_string_list)
        return [check_keywords(v or [], t) if v is not None
                else KeywordResult([], [{"keyword": "", "reason": "unparsable_answer"}], None)
                for v, t in zip(values, transcripts)]


@dataclass
class ContextPiece:
    text: str
    relevant: bool
    generator: str
    keywords: list[str] = field(default_factory=list)  # this sample's keywords the piece contains
    origin: str | None = None  # the sample (or pool sentence) an irrelevant/retrieved piece came from

    def as_dict(self) -> dict:
        return asdict(self)


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def filter_pieces(pieces: Iterable[str], keywords: Sequence[str], transcript: str, generator: str,
                  require_keywords: bool = True) -> tuple[list[ContextPiece], list[dict]]:
    """Step 3: the keyword-match filter (and the sanity checks around it).

    Returns kept pieces (each listing the keywords it contains) and drops ``{"text", "reason"}``.
    `require_keywords=False` is the no-keyword fallback: no keyword to match, the rest applies.
    """
    kept, dropped, seen = [], [], set()
    whole = match_form(transcript)
    for raw in pieces:
        text = raw.strip() if isinstance(raw, str) else ""
        form = match_form(text)
        matched = [k for k in keywords if keyword_in(k, text)]
        if not form:
            reason = "empty"
        elif len(text) > MAX_PIECE_CHARS:
            reason = "too_long"
        elif form in seen:
            reason = "duplicate"
        elif form == whole or (len(whole) >= 8 and whole in form):
            reason = "copies_transcript"
        elif require_keywords and not matched:
            reason = "missing_keywords"
        else:
            kept.append(ContextPiece(text, True, generator, matched))
            seen.add(form)
            continue
        dropped.append({"text": text[:MAX_PIECE_CHARS], "reason": reason, "generator": generator})
    return kept, dropped


class LLMContextWriter:
    """Step 2: LLM context pieces from transcript + keywords (or the topic, with no keywords)."""

    def __init__(self, llm: LLMClient, style: str = "fewshot", pieces: int = 3,
                 max_tokens: int = 96, temperature: float = 0.7, seed: int = 0):
        self.llm = llm
        self.count = pieces
        self.with_keywords = get_prompt("context", style)
        self.topic = get_prompt("topic", style)
        self.temperature, self.max_tokens, self.seed = temperature, max_tokens, seed

    def prompt_lineage(self) -> dict:
        return {"context": self.with_keywords.lineage(), "topic": self.topic.lineage()}

    def write(self, items: Sequence[tuple[str, str, Sequence[str]]]) -> list[list[str]]:
        """`items` are (sample key, transcript, keywords); returns raw pieces per item."""
        answers: list[list[str]] = [[] for _ in items]
        for template, wanted in ((self.with_keywords, True), (self.topic, False)):
            indices = [i for i, (_, _, kws) in enumerate(items) if bool(kws) == wanted]
            if not indices:
                continue
            requests = []
            for i in indices:
                key, transcript, keywords = items[i]
                request = (template.render(transcript, list(keywords), self.count) if wanted
                           else template.render(transcript, self.count))
                requests.append(Request(prompt=request.prompt, messages=request.messages,
                                        seed=stable_seed(key, "context", self.seed)))
            params = GenerationParams(temperature=self.temperature, max_tokens=self.max_tokens,
                                      seed=self.seed, stop=template.stop)
            values = self.llm.generate_json(requests, params, json_prefix=template.json_prefix,
                                            validate=_string_list, retries=1)
            for i, value in zip(indices, values):
                answers[i] = [v for v in value or [] if isinstance(v, str)]
        return answers


class KeywordRetrieval:
    """Step 4 (non-LLM): sentences of other transcripts that contain the keywords.

    A real technique for contextual data: what was said elsewhere about the same entity is the
    context a user would paste. The pool is split into sentences once; a sentence equal to (or
    containing) the transcript itself is never returned.
    """

    def __init__(self, texts: Iterable[tuple[str, str]]):
        """`texts` are (origin id, text) pairs: other transcripts, documents, a sentence pool."""
        self.sentences: list[tuple[str, str, str]] = []
        seen = set()
        for origin, text in texts:
            for sentence in split_sentences(text):
                form = match_form(sentence)
                if form and form not in seen and len(sentence) <= MAX_PIECE_CHARS:
                    seen.add(form)
                    self.sentences.append((origin, sentence, form))

    def retrieve(self, transcript: str, keywords: Sequence[str], exclude_origin: str | None,
                 limit: int, seed: int) -> list[ContextPiece]:
        whole = match_form(transcript)
        forms = [match_form(k) for k in keywords]
        hits = [(origin, sentence, [k for k, f in zip(keywords, forms) if f and f in form])
                for origin, sentence, form in self.sentences
                if origin != exclude_origin and form != whole and whole not in form]
        hits = [h for h in hits if h[2]]
        rng = np.random.default_rng(seed)
        order = sorted(range(len(hits)), key=lambda i: (-len(hits[i][2]), rng.random()))
        return [ContextPiece(hits[i][1], True, GENERATOR_RETRIEVAL, hits[i][2], hits[i][0])
                for i in order[:limit]]


def sample_irrelevant(pool: Sequence[tuple[str, str]], exclude_origin: str, keywords: Sequence[str],
                      transcript: str, seed: int, count: int = IRRELEVANT_PIECES) -> list[ContextPiece]:
    """Step 5: `count` pieces (origin, text) from other samples that mention none of `keywords`
    and are not this transcript. Fewer only when the pool has fewer."""
    whole = match_form(transcript)
    candidates = sorted({(origin, text) for origin, text in pool
                         if origin != exclude_origin and match_form(text) != whole
                         and not any(keyword_in(k, text) for k in keywords)})
    rng = np.random.default_rng(seed)
    picked, seen = [], set()
    for i in rng.permutation(len(candidates)):
        origin, text = candidates[int(i)]
        if match_form(text) in seen:
            continue
        seen.add(match_form(text))
        picked.append(ContextPiece(text, False, "other-sample", [], origin))
        if len(picked) == count:
            break
    return picked


def mix_context(relevant: Sequence[ContextPiece], irrelevant: Sequence[ContextPiece],
                seed: int) -> list[ContextPiece]:
    """Relevant and irrelevant pieces in one seeded random order (position gives nothing away)."""
    pieces = list(relevant) + list(irrelevant)
    order = np.random.default_rng(seed).permutation(len(pieces))
    return [pieces[int(i)] for i in order]


@dataclass
class Segment:
    index: int
    start: float
    end: float
    text: str
    previous_text: str | None
    utterances: int
    window: int  # which <= max_recording_s stretch of the recording it belongs to

    @property
    def duration(self) -> float:
        return self.end - self.start


def segment_recording(utterances: Sequence[dict], language: str, max_segment_s: float = 30.0,
                      max_recording_s: float = 300.0, pad_s: float = 0.15) -> list[Segment]:
    """Step 6: cut a long recording at utterance boundaries.

    `utterances` are ``{"start", "end", "text"}`` in seconds, in order. Consecutive utterances are
    packed into segments of at most `max_segment_s` (an utterance longer than that is a segment
    by itself); the recording is taken in stretches of at most `max_recording_s` (the report's
    "long audio up to 5 minutes"), and inside a stretch each segment's `previous_text` is the
    transcript of the segment before it (None for a stretch's first segment).
    """
    joiner = " " if language == "en" else ""
    segments: list[Segment] = []
    group: list[dict] = []
    window, window_start = 0, None

    def flush():
        nonlocal group
        if not group:
            return
        previous = segments[-1].text if segments and segments[-1].window == window else None
        start = max(0.0, group[0]["start"] - pad_s)
        segments.append(Segment(len(segments), start, group[-1]["end"] + pad_s,
                                joiner.join(u["text"].strip() for u in group), previous,
                                len(group), window))
        group = []

    for utterance in utterances:
        if window_start is None:
            window_start = utterance["start"]
        if utterance["end"] - window_start > max_recording_s:
            flush()
            window += 1
            window_start = utterance["start"]
        if group and utterance["end"] - group[0]["start"] > max_segment_s:
            flush()
        group.append(utterance)
    flush()
    return segments
