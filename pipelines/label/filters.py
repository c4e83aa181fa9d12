"""Label filters (Fun-ASR report section 3.2: data quality), applied after ITN.

Checked in this order; the first that fails rejects the segment (stage ``filter``):

- ``empty_text``: nothing left after normalisation;
- ``duration``: outside [``min_duration_seconds``, ``max_duration_seconds``] (long-form mode
  raises the maximum to ``vad.long_form_max_seconds``);
- ``language_mismatch``: the label's script language (:func:`funfactory.eval.textnorm.
  detect_language`) is not allowed by the segment's hint (``zh-en`` allows zh, en and zh-en);
- ``hallucination_phrase``: a known ASR hallucination ("thanks for watching", ...);
- ``repetition``: an n-gram (n <= 4) repeated more than ``max_repeats`` times in a row;
- ``chars_per_second``: scoring characters per second (Latin letters and digits, or Han
  characters) outside the per-language range.
"""

from __future__ import annotations

import time

import apache_beam as beam

from funfactory.eval.textnorm import detect_language, normalize_for_scoring, scoring_tokens
from funfactory.pipelines.common.rejects import reject_row
from funfactory.pipelines.label.config import FilterConfig


def longest_repeat(tokens: list[str], max_n: int = 4) -> tuple[int, str]:
    """The largest number of back-to-back copies of any n-gram (n <= max_n), and the n-gram."""
    best, gram = (1, tokens[0]) if tokens else (0, "")
    for n in range(1, max_n + 1):
        for i in range(len(tokens) - 2 * n + 1):
            run = 1
            while tokens[i + run * n:i + (run + 1) * n] == tokens[i:i + n]:
                run += 1
            if run > best:
                best, gram = run, " ".join(tokens[i:i + n])
    return best, gram


def language_allowed(hint: str, detected: str) -> bool:
    if not hint or not detected:
        return True
    allowed = {hint} | (set(hint.split("-")) if "-" in hint else set())
    return detected in allowed


def spoken_characters(text: str, language: str | None) -> int:
    scoring = normalize_for_scoring(text, language)
    return sum(1 for ch in scoring if ch.isalnum())


def check(text: str, duration: float, hint: str, cfg: FilterConfig,
          max_duration: float) -> tuple[str, str] | None:
    """``(reason, detail)`` of the first failed filter, or None (module docstring)."""
    language = detect_language(text)
    tokens = scoring_tokens(text, language or None)
    if not tokens:
        return "empty_text", "the label is empty after normalisation"
    if not cfg.min_duration_seconds <= duration <= max_duration:
        return "duration", (f"{duration:.2f} s outside [{cfg.min_duration_seconds}, "
                            f"{max_duration}] s")
    if cfg.language_match and not language_allowed(hint, language):
        return "language_mismatch", f"label is {language!r}, source hint is {hint!r}"
    scoring = normalize_for_scoring(text, language or None)
    for phrase in cfg.hallucination_phrases:
        needle = normalize_for_scoring(phrase)
        if needle and needle in scoring:
            return "hallucination_phrase", f"label contains {phrase!r}"
    repeats, gram = longest_repeat(tokens)
    if repeats > cfg.max_repeats:
        return "repetition", f"{gram!r} repeated {repeats} times in a row"
    key = language or "en"
    rate = spoken_characters(text, language or None) / max(duration, 1e-6)
    low = cfg.min_chars_per_second.get(key, 0.0)
    high = cfg.max_chars_per_second.get(key, float("inf"))
    if not low <= rate <= high:
        return "chars_per_second", f"{rate:.1f} chars/s outside [{low}, {high}] for {key}"
    return None


class FilterLabels(beam.DoFn):
    def __init__(self, cfg: FilterConfig, max_duration: float):
        self.cfg = cfg
        self.max_duration = max_duration

    def process(self, item):
        unit, kind, p = item
        if kind != "segment":
            yield item
            return
        started = time.perf_counter()
        failed = check(p["text"], p["duration"], p["language_hint"], self.cfg, self.max_duration)
        p = {**p, "stage_seconds": {**p["stage_seconds"], "filter": time.perf_counter() - started}}
        if failed is None:
            beam.metrics.Metrics.counter("filter", "kept").inc()
            yield unit, kind, p
            return
        reason, detail = failed
        beam.metrics.Metrics.counter("filter", "dropped").inc()
        row = reject_row(unit=unit, key=p["key"], stage="filter", reason=reason,
                         detail=f"{detail}; label {p['text'][:200]!r}", uri=p["uri"],
                         offset=p["offset"], duration=p["duration"])
        row["stage_seconds"] = p["stage_seconds"]
        yield unit, "reject", row
