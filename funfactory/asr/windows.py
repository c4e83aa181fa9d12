"""Packed decoding windows: consecutive short clips of one recording decoded in one window.

Whisper's encoder always sees a 30 s window: a 3 s clip alone is padded with 27 s of silence, so
labelling VAD segments one by one costs the encoder ten times the work of the speech in them
(Fun-ASR report section 3.1 labels the segments VAD cuts). Joined
back to back in their recording's order, separated by ``gap`` samples of digital silence, several
segments fill one window the way Whisper's own long-form decoding fills it, and the decoder's
timestamps map its text back to the segments.

:func:`join` lays the clips out; :func:`assign` maps timed chunks of decoded text (``[start, end]``
in window seconds) to the clips. A chunk belongs to the clip whose share of the timeline (its span
widened to the middle of the gaps each side) holds the chunk's midpoint. A chunk that reaches more
than :data:`TOLERANCE_SECONDS` into another clip (two segments read as one sentence, or words of
one segment timed into the next) makes both clips *unresolved*: the caller decodes those alone, as
if they had never been packed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

SAMPLE_RATE = 16000
TOLERANCE_SECONDS = 0.5  # timing slack of a chunk's timestamps beyond its own clip


def joined_samples(lengths: Sequence[int], gap: int) -> int:
    """Samples of the window that :func:`join` makes of clips of these lengths."""
    return int(sum(lengths)) + gap * max(0, len(lengths) - 1)


def join(clips: Sequence[np.ndarray], gap: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The clips back to back with ``gap`` zero samples between; each clip's span in seconds."""
    parts, spans, at = [], [], 0
    silence = np.zeros(gap, np.float32)
    for i, clip in enumerate(clips):
        if i:
            parts.append(silence)
            at += gap
        parts.append(np.asarray(clip, np.float32))
        spans.append((at / SAMPLE_RATE, (at + len(clip)) / SAMPLE_RATE))
        at += len(clip)
    return np.concatenate(parts), spans


def assign(chunks: Sequence[tuple[float, float]],
           spans: Sequence[tuple[float, float]]) -> tuple[list[int], set[int]]:
    """(owner clip of each chunk, clips left unresolved) -- module docstring."""
    bounds = [(spans[i][1] + spans[i + 1][0]) / 2 for i in range(len(spans) - 1)]
    owners: list[int] = []
    unresolved: set[int] = set()
    for start, end in chunks:
        owner = int(np.searchsorted(bounds, (start + end) / 2))
        owners.append(owner)
        for j, (s, e) in enumerate(spans):
            if j != owner and min(end, e) - max(start, s) > TOLERANCE_SECONDS:
                unresolved.update((owner, j))
    return owners, unresolved
