"""Config of the contextual SFT data pipeline (Fun-ASR section 4.3)."""

from __future__ import annotations

from dataclasses import dataclass, field

from funfactory.synth.llm import LLMConfig


@dataclass
class ContextConfig:
    corpus_scale: str = "tiny"  # input when no shards are given: the embedded default corpus
    corpus_seed: int = 0
    generators: list[str] = field(default_factory=lambda: ["llm", "retrieval-keyword"])
    llm: LLMConfig = field(default_factory=LLMConfig)
    pieces_per_sample: int = 3  # relevant pieces asked of each generator
    irrelevant_pieces: int = 5
    max_segment_s: float = 30.0
    max_recording_s: float = 300.0
    keyword_max_tokens: int = 48
    context_max_tokens: int = 96
    context_temperature: float = 0.7
    limit_units: int = 0  # 0: every recording
    only_units: list[str] = field(default_factory=list)  # recording ids to keep ([]: all)
    seed: int = 0
    dataset: str = "context"
    split: str = "train"
    max_count: int = 1000
