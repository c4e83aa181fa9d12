"""Configuration of the streaming simulation pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StreamingConfig:
    dataset: str = "streaming"
    split: str = "train"
    #: audio revealed per step (section 5.1 default: 720 ms)
    chunk_ms: int = 720
    #: ASR backend kind (funfactory.asr.registry) that times words, per language;
    #: '*' is the fallback
    aligners: dict = field(default_factory=lambda: {"en": "whisper-tiny-en", "*": "whisper-base"})
    #: reject an utterance when the aligner matched fewer of its label tokens than this
    min_match_rate: float = 0.6
    max_count: int = 1000
