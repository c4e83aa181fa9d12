"""Chunked prefixes of an utterance (section 5.1): after chunk k the model has heard exactly the
first k * chunk of the audio and nothing after it; the target is the part of the label that the
heard audio supports.

The visible lengths are chunk, 2 chunk, ..., and finally the whole utterance. Each prefix's text
is `label[:end of the last supported token]`, so it is a prefix of the full label by construction,
and prefixes grow with the audio.
"""

from __future__ import annotations

from dataclasses import dataclass

from funfactory.errors import FunfactoryError
from funfactory.pipelines.streaming.alignment import Alignment

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class StreamPrefix:
    index: int  # 0-based chunk number
    visible_samples: int
    text: str
    final: bool

    @property
    def visible_seconds(self) -> float:
        return self.visible_samples / SAMPLE_RATE


def visible_lengths(num_samples: int, chunk_ms: int) -> list[int]:
    if chunk_ms <= 0:
        raise FunfactoryError(f"streaming chunk_ms {chunk_ms} must be positive")
    chunk = int(round(chunk_ms * SAMPLE_RATE / 1000))
    lengths = list(range(chunk, num_samples, chunk))
    return lengths + [num_samples]


def supported_text(label: str, alignment: Alignment, seconds: float) -> str:
    """The longest label prefix whose tokens are all ready by `seconds`."""
    end = 0
    for token, ready in zip(alignment.tokens, alignment.ready_at):
        if ready > seconds:
            break
        end = token.end
    return label[:end].rstrip()


def stream_prefixes(label: str, alignment: Alignment, num_samples: int,
                    chunk_ms: int) -> list[StreamPrefix]:
    lengths = visible_lengths(num_samples, chunk_ms)
    out = []
    for i, length in enumerate(lengths):
        final = i == len(lengths) - 1
        text = label if final else supported_text(label, alignment, length / SAMPLE_RATE)
        out.append(StreamPrefix(i, length, text, final))
    return out
