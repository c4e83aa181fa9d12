"""Voice activity detection and segmentation (Fun-ASR report section 3.1), streamed.

silero-vad's sequence ONNX model (``load_silero_vad(sequence=True)``, bit-exact with the
streaming model, one ONNX call per block of up to 512 frames of 32 ms) gives per-frame speech
probabilities; :class:`StreamingProbabilities` carries its LSTM state and frame context across
decode windows, so a file of any length is processed window by window. Blocks of digital silence
(peak below 1e-4) skip the model: their probability is 0 and the state is reset, as if the
stream restarted there (speech onsets after such silence move by at most a frame or two:
tests/test_label_steps.py; ``skip_digital_silence=False`` turns it off).

:class:`Segmenter` turns probabilities into segments:

1. hysteresis: speech starts at ``p >= threshold`` and ends after ``min_silence_seconds`` below
   ``threshold - 0.15``; regions shorter than ``min_speech_seconds`` are dropped as blips;
2. a region longer than the maximum (``max_segment_seconds``, or ``long_form_max_seconds`` in
   long-form mode, minus the padding) is split at its least speech-like frame in its last 5 s;
3. neighbouring regions closer than ``max_merge_gap_seconds`` merge while the span stays under
   the maximum;
4. each segment is padded with ``pad_seconds`` of real audio each side, never past the middle of
   the gap to a neighbour nor the ends of the source;
5. segments shorter than ``min_segment_seconds`` become rejects (``too_short``), not samples.

Every segment, kept or rejected, gets the next index of its source, so keys are deterministic.
Ingest is fused with VAD in :class:`SegmentSources` (one DoFn per source): a long recording
flows through decode, resample and VAD without its windows ever entering the Beam shuffle.
Each segment gets the number of its decoding ``window`` (:mod:`funfactory.pipelines.label.packing`:
consecutive segments packed into one Whisper window of ``pack_seconds``; 0: each alone), and
segments leave in batches of at least ``batch_size`` closed only between windows
(``(unit, "batch", [segment, ...])``), the unit of batched inference downstream. Batching inside
the source DoFn rather than with ``beam.BatchElements`` is deliberate: Beam 2.77's DaskRunner
drops whatever a DoFn emits from ``finish_bundle`` (``apply_dofn_to_bundle`` collects results
before calling it), which loses the last partial batch of every bundle; per-source batches are
identical on every runner.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import apache_beam as beam
import numpy as np

from funfactory.pipelines.common.rejects import reject_row
from funfactory.pipelines.common.workers import worker_cached
from funfactory.pipelines.label.config import VadConfig
from funfactory.pipelines.label.ingest import IngestError, Source, stream_audio
from funfactory.pipelines.label.packing import WindowPlanner
from funfactory.shards.keys import segment_key

SAMPLE_RATE = 16000
FRAME = 512
CONTEXT = 64
BLOCK_FRAMES = 512
SILENCE_PEAK = 1e-4
SPLIT_SEARCH_SECONDS = 5.0


def load_sequence_model():
    """The silero-vad sequence ONNX session (shipped in the silero-vad wheel)."""
    from silero_vad import load_silero_vad
    return load_silero_vad(sequence=True).session


class StreamingProbabilities:
    """Per-frame speech probabilities of a stream fed in arbitrary chunks (module docstring)."""

    def __init__(self, session, skip_digital_silence: bool = True):
        self.session = session
        self.skip_digital_silence = skip_digital_silence
        self.reset()
        self.model_seconds = 0.0

    def reset(self) -> None:
        self.hidden = np.zeros((1, 1, 128), np.float32)
        self.cell = np.zeros((1, 1, 128), np.float32)
        self.context = np.zeros(CONTEXT, np.float32)
        self.leftover = np.zeros(0, np.float32)

    def feed(self, audio: np.ndarray, last: bool = False) -> np.ndarray:
        audio = np.concatenate([self.leftover, audio.astype(np.float32, copy=False)])
        usable = len(audio) // FRAME * FRAME
        if last and usable < len(audio):
            audio = np.pad(audio, (0, FRAME - (len(audio) - usable)))
            usable = len(audio)
        self.leftover = audio[usable:].copy()
        frames = audio[:usable].reshape(-1, FRAME)
        out = []
        for first in range(0, len(frames), BLOCK_FRAMES):
            block = frames[first:first + BLOCK_FRAMES]
            if self.skip_digital_silence and float(np.max(np.abs(block))) < SILENCE_PEAK:
                self.hidden[:] = 0
                self.cell[:] = 0
                self.context = np.zeros(CONTEXT, np.float32)
                out.append(np.zeros(len(block), np.float32))
                continue
            contexts = np.empty((len(block), CONTEXT), np.float32)
            contexts[0] = self.context
            contexts[1:] = block[:-1, -CONTEXT:]
            started = time.perf_counter()
            probs, self.hidden, self.cell = self.session.run(
                ["speech_probs", "hn", "cn"],
                {"input": np.concatenate([contexts, block], axis=1), "h": self.hidden,
                 "c": self.cell})
            self.model_seconds += time.perf_counter() - started
            self.context = block[-1, -CONTEXT:].copy()
            out.append(np.asarray(probs, np.float32).reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, np.float32)


@dataclass
class Span:
    start: int  # samples from the start of the stream
    end: int


class Segmenter:
    """Probabilities in, padded segment spans out (module docstring, steps 1-4)."""

    def __init__(self, cfg: VadConfig):
        sec = SAMPLE_RATE / FRAME
        self.threshold = cfg.threshold
        self.negative = max(cfg.threshold - 0.15, 0.01)
        self.min_speech = max(1, round(cfg.min_speech_seconds * sec))
        self.min_silence = max(1, round(cfg.min_silence_seconds * sec))
        self.pad = int(cfg.pad_seconds * SAMPLE_RATE)
        self.max_frames = max(2, int((cfg.max_seconds - 2 * cfg.pad_seconds) * sec))
        self.gap = round(cfg.max_merge_gap_seconds * sec)
        self.split_search = max(1, round(SPLIT_SEARCH_SECONDS * sec))
        self.frame = 0
        self.triggered = False
        self.start = 0
        self.temp_end: int | None = None
        self.probs: list[float] = []
        self.pending: list[int] | None = None  # merged region [start, end) in frames
        self.prev_right = 0  # samples: right edge of the last emitted segment

    def _close(self, start: int, end: int, out: list[Span]) -> None:
        if end - start < self.min_speech:
            return
        if self.pending is not None:
            ps, pe = self.pending
            if start - pe <= self.gap and end - ps <= self.max_frames:
                self.pending[1] = end
                return
            self._emit(start, out)
        self.pending = [start, end]

    def _emit(self, next_start: int | None, out: list[Span], total: int | None = None) -> None:
        ps, pe = self.pending
        left = max(ps * FRAME - self.pad, self.prev_right, 0)
        right = pe * FRAME + self.pad
        if next_start is not None:
            right = min(right, (pe + next_start) * FRAME // 2)
        if total is not None:
            right = min(right, total)
        out.append(Span(left, right))
        self.prev_right = right
        self.pending = None

    def feed(self, probs: np.ndarray) -> list[Span]:
        out: list[Span] = []
        for p in probs.tolist():
            i = self.frame
            self.frame += 1
            if not self.triggered:
                if p >= self.threshold:
                    self.triggered, self.start, self.temp_end, self.probs = True, i, None, [p]
                elif self.pending is not None and i - self.pending[1] > self.gap:
                    self._emit(None, out)
                continue
            self.probs.append(p)
            if p >= self.threshold:
                self.temp_end = None
            elif p < self.negative:
                if self.temp_end is None:
                    self.temp_end = i
                if i - self.temp_end >= self.min_silence:
                    self._close(self.start, self.temp_end, out)
                    self.triggered = False
                    continue
            if i + 1 - self.start >= self.max_frames:
                tail = self.probs[-self.split_search:]
                split = self.start + len(self.probs) - len(tail) + int(np.argmin(tail))
                split = max(split, self.start + 1)
                self._close(self.start, split, out)
                self.probs = self.probs[split - self.start:]
                self.start = split
        return out

    def finish(self, total_samples: int) -> list[Span]:
        out: list[Span] = []
        if self.triggered:
            end = self.temp_end if self.temp_end is not None else self.frame
            self._close(self.start, end, out)
            self.triggered = False
        if self.pending is not None:
            self._emit(None, out, total=total_samples)
        return out

    def keep_from(self) -> int:
        """The earliest sample a future segment can still need."""
        candidates = [self.frame * FRAME - self.pad - FRAME]
        if self.pending is not None:
            candidates.append(self.pending[0] * FRAME - self.pad)
        if self.triggered:
            candidates.append(self.start * FRAME - self.pad)
        return max(min(candidates), self.prev_right, 0)


def _reference(source: Source, start: float, end: float) -> str | None:
    """Known text of a segment: the source's utterances whose midpoint lies inside it."""
    if not source.utterances:
        return None
    texts = [text for u0, u1, text in source.utterances if start <= (u0 + u1) / 2 < end]
    return " ".join(texts)


class SegmentSources(beam.DoFn):
    """source dict -> ``(unit, "segment", {...audio...})`` items, ``(unit, "reject", row)`` for
    too-short segments and failed files, and one ``(unit, "unit", info)`` per source."""

    def __init__(self, cfg: VadConfig, window_seconds: float = 30.0, batch_size: int = 8,
                 pack_seconds: float = 0.0, pack_gap_seconds: float = 0.0):
        self.cfg = cfg
        self.window_seconds = window_seconds
        self.batch_size = max(1, batch_size)
        self.pack_seconds, self.pack_gap_seconds = pack_seconds, pack_gap_seconds

    def setup(self):
        self.session = worker_cached("silero-vad-sequence", load_sequence_model)

    def process(self, source_dict):
        source = Source.from_dict(source_dict)
        unit = source.id
        vad = StreamingProbabilities(self.session)
        segmenter = Segmenter(self.cfg)
        stage = {"decode": 0.0, "resample": 0.0, "vad": 0.0}
        buffer = np.zeros(0, np.float32)
        base = 0  # stream sample index of buffer[0]
        total = 0
        count = 0
        error: IngestError | None = None
        min_samples = int(self.cfg.min_segment_seconds * SAMPLE_RATE)

        def cut(span: Span):
            nonlocal count
            audio = buffer[span.start - base:span.end - base].copy()
            offset = source.offset + span.start / SAMPLE_RATE
            duration = len(audio) / SAMPLE_RATE
            key = segment_key(unit, count)
            count += 1
            if len(audio) < min_samples:
                beam.metrics.Metrics.counter("vad", "dropped").inc()
                return (unit, "reject", reject_row(
                    unit=unit, key=key, stage="vad", reason="too_short", uri=source.uri,
                    offset=offset, duration=duration,
                    detail=f"{duration:.2f} s < vad.min_segment_seconds "
                           f"{self.cfg.min_segment_seconds}"))
            beam.metrics.Metrics.counter("vad", "kept").inc()
            return (unit, "segment", {
                "key": key, "index": count - 1, "offset": round(offset, 4),
                "duration": duration, "audio": audio, "uri": source.uri,
                "language_hint": source.language, "published_at": source.published_at,
                "reference": _reference(source, offset, offset + duration),
                "stage_seconds": {}})

        batch: list[dict] = []
        planner = WindowPlanner(self.pack_seconds, self.pack_gap_seconds)

        def emit(span: Span):
            item = cut(span)
            if item[1] != "segment":
                return [item]
            segment = item[2]
            segment["window"], opens = planner.place(segment["duration"])
            out = []
            if opens and len(batch) >= self.batch_size:
                out.append((unit, "batch", list(batch)))
                batch.clear()
            batch.append(segment)
            return out

        try:
            for window in stream_audio(source, self.window_seconds):
                stage["decode"] += window.decode_seconds
                stage["resample"] += window.resample_seconds
                buffer = np.concatenate([buffer, window.audio])
                total += len(window.audio)
                started = time.perf_counter()
                spans = segmenter.feed(vad.feed(window.audio))
                stage["vad"] += time.perf_counter() - started
                for span in spans:
                    yield from emit(span)
                keep = segmenter.keep_from()
                if keep - base > len(window.audio):
                    buffer = buffer[keep - base:]
                    base = keep
        except IngestError as e:
            error = e
        started = time.perf_counter()
        if total:
            segmenter.feed(vad.feed(np.zeros(0, np.float32), last=True))
        stage["vad"] += time.perf_counter() - started
        for span in segmenter.finish(total):
            yield from emit(span)
        if batch:
            yield unit, "batch", list(batch)
        seconds_in = total / SAMPLE_RATE
        if error is not None:
            at = error.at_seconds
            yield unit, "reject", reject_row(
                unit=unit, stage="ingest", reason=error.reason, detail=error.detail,
                uri=source.uri, offset=at if at is not None else source.offset,
                duration=None)
            beam.metrics.Metrics.counter("ingest", "dropped").inc()
        elif count == 0:
            yield unit, "reject", reject_row(
                unit=unit, stage="vad", reason="no_speech", uri=source.uri,
                offset=source.offset, duration=seconds_in,
                detail=f"no speech found in {seconds_in:.1f} s")
            beam.metrics.Metrics.counter("vad", "no_speech").inc()
        else:
            beam.metrics.Metrics.counter("ingest", "kept").inc()
        yield unit, "unit", {"uri": source.uri, "seconds_in": seconds_in, "segments": count,
                             "language": source.language, "vad_model_seconds": vad.model_seconds,
                             "stage_seconds": stage}
