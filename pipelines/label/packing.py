"""Decoding windows of VAD segments (Fun-ASR report section 3.1, pseudo-labelling throughput).

VAD drops a recording's pauses, but Whisper pads every segment to its own 30 s window, so labelling
segments one by one made Whisper's encoder do several times the work of decoding the whole
recording. :class:`WindowPlanner` groups consecutive segments of one source into windows of at
most ``asr.pack_seconds`` (their durations plus ``asr.pack_gap_seconds`` of silence between
them); :func:`funfactory.asr.base.AsrBackend.transcribe_windows` decodes each window's segments
together where the backend decodes fixed windows (Whisper) and splits the text back per segment
(:mod:`funfactory.asr.windows`).

The plan depends only on the source's own segments, in order, never on how segments are batched:
a segment's window, and so its hypotheses and scores, are the same in every run, resumed or not.
:class:`funfactory.pipelines.label.vad.SegmentSources` closes inference batches only between
windows, and :func:`windows_of` rebuilds the windows inside a batch from each segment's
``window`` number (segments without one are windows of their own).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


class WindowPlanner:
    """Window numbers for the segments of one source, fed in order (module docstring)."""

    def __init__(self, pack_seconds: float, gap_seconds: float):
        self.pack_seconds = pack_seconds
        self.gap_seconds = gap_seconds
        self.window = -1
        self.filled = 0.0
        self.empty = True

    def place(self, duration: float) -> tuple[int, bool]:
        """(window number of a segment of ``duration`` seconds, whether it opens a new window)."""
        needed = duration if self.empty else self.filled + self.gap_seconds + duration
        if self.empty or needed > self.pack_seconds:
            self.window += 1
            self.filled, self.empty = duration, False
            return self.window, True
        self.filled = needed
        return self.window, False


def windows_of(segments: Sequence[dict], languages: Sequence[str | None],
               covers: Callable[[str | None], bool]) -> list[list[int]]:
    """Indices of the segments a backend covers, grouped into windows: same ``window`` number and
    same language, in segment order."""
    groups: dict[tuple, list[int]] = {}
    for i in sorted(range(len(segments)), key=lambda i: segments[i].get("index", 0)):
        if not covers(languages[i]):
            continue
        window = segments[i].get("window")
        key = (window, languages[i]) if window is not None else ("alone", i)
        groups.setdefault(key, []).append(i)
    return list(groups.values())
