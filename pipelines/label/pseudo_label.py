"""Multi-system pseudo-labelling (Fun-ASR report section 3.1): every ASR system that covers a
segment's language transcribes it; every hypothesis is kept.

:class:`PseudoLabel` is a DoFn over batches (``(unit, "batch", [segment, ...])`` from
:class:`funfactory.pipelines.label.vad.SegmentSources`): the backends are built and loaded once
per worker process in ``setup()`` (cached per process, since some runners call ``setup`` per
bundle), and each batch is handed to each backend in one ``transcribe_windows`` call: the
segments grouped into their decoding windows (:mod:`funfactory.pipelines.label.packing`), which
Whisper decodes window by window and the other backends segment by segment. Segments without a
language hint are first transcribed by the multilingual backends (Whisper base), whose detected
language then decides which language-specific backends (tiny.en, pocketsphinx) also run.

A segment's hypotheses and scores do not depend on the batch it came in (a resumed job composes
batches differently): its window is planned from its source's segments alone, Whisper decodes
each window (or lone segment) padded to its own 30 s independently of the rest of the batch, and
pocketsphinx starts every clip from the same cepstral mean.

Segments in ``known`` (key -> ``{"labels", "language", "asr_seconds"}``: the hypotheses the job's
sample pass, :mod:`funfactory.pipelines.label.sample_pass`, already made, and what they cost) are
not transcribed again; their ASR time is the sample pass's.

A backend that fails on a batch records ``{"error": ...}`` for those segments (counted as ``label/backend_errors``); the
vote step then has fewer hypotheses.

Segment items gain ``labels`` (system -> hypothesis dict), ``language`` (hint, else detected)
and ``stage_seconds["asr"]`` (each backend call's time split over its segments by duration).
Items of other kinds pass through untouched.
"""

from __future__ import annotations

import time

import apache_beam as beam

from funfactory.errors import FunfactoryError
from funfactory.asr.registry import BackendSpec, build_backend
from funfactory.pipelines.common.workers import worker_cached
from funfactory.pipelines.label.packing import windows_of

_BACKEND_ERRORS = (FunfactoryError, RuntimeError, ValueError, OSError)


class PseudoLabel(beam.DoFn):
    def __init__(self, specs: list[BackendSpec], known: dict | None = None,
                 gap_seconds: float = 0.0):
        self.specs = list(specs)
        self.known = known or {}
        self.gap_seconds = gap_seconds

    def setup(self):
        backends = [worker_cached(("asr", repr(spec)), lambda spec=spec: build_backend(spec).load())
                    for spec in self.specs]
        # multilingual systems first: they detect the language for segments without a hint
        self.backends = sorted(backends, key=lambda b: b.languages is not None)
        self.errors = beam.metrics.Metrics.counter("label", "backend_errors")

    def process(self, item):
        unit, kind, batch = item
        if kind != "batch":
            yield item
            return
        # new payloads: the input batch (and its dicts) may be shared by the runner
        payloads = [{**p, "labels": {}, "stage_seconds": dict(p["stage_seconds"])} for p in batch]
        total = sum(p["duration"] for p in payloads) or 1.0
        languages = [p["language_hint"] or None for p in payloads]
        for p in payloads:
            if p["key"] in self.known:
                known = self.known[p["key"]]
                p["labels"] = {s: dict(v) for s, v in known["labels"].items()}
                p["stage_seconds"]["asr"] = known["asr_seconds"]
        for backend in self.backends:
            # the sample pass labels whole sources, so a window is known whole or not at all
            windows = [w for w in windows_of(payloads, languages, backend.covers)
                       if any(payloads[i]["key"] not in self.known for i in w)]
            if not windows:
                continue
            chosen = [i for window in windows for i in window]
            started = time.perf_counter()
            try:
                transcripts = [t for window in backend.transcribe_windows(
                    [[payloads[i]["audio"] for i in window] for window in windows],
                    [languages[window[0]] for window in windows], self.gap_seconds)
                    for t in window]
                results = [t.as_label() for t in transcripts]
            except _BACKEND_ERRORS as e:
                self.errors.inc(len(chosen))
                results = [{"error": f"{type(e).__name__}: {e}"[:500]}] * len(chosen)
                transcripts = [None] * len(chosen)
            elapsed = time.perf_counter() - started
            share = sum(payloads[i]["duration"] for i in chosen) or 1.0
            for i, result, transcript in zip(chosen, results, transcripts):
                payloads[i]["labels"][backend.name] = dict(result)
                seconds = payloads[i]["stage_seconds"]
                seconds["asr"] = seconds.get("asr", 0.0) + elapsed * payloads[i]["duration"] / share
                if languages[i] is None and transcript is not None and transcript.language:
                    languages[i] = transcript.language
        for p, lang in zip(payloads, languages):
            p["language"] = self.known[p["key"]]["language"] if p["key"] in self.known \
                else lang or ""
        beam.metrics.Metrics.counter("label", "segments").inc(len(payloads))
        beam.metrics.Metrics.distribution("label", "batch_audio_ms").update(int(1000 * total))
        for p in payloads:
            yield unit, "segment", p
