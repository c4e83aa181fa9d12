"""Configuration of the RL data pipeline (YAML + dotted overrides through funfactory.config)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RLDataConfig:
    #: output shards are named {dataset}-{split}-NNNNNN.tar
    dataset: str = "rl"
    split: str = "train"
    max_count: int = 1000
    #: hard cases: the external systems agree (every pairwise error rate below this) ...
    agreement_max: float = 0.05
    #: ... while the current model's error rate against the label is above this
    model_error_min: float = 0.10
    #: at least this many external systems' hypotheses in `labels` to judge agreement
    min_systems: int = 3
    #: long segments: longer than this many seconds
    long_seconds: float = 20.0
    #: hallucination: the model's output has more than ratio * reference tokens + margin tokens
    length_ratio: float = 1.5
    length_margin: int = 2
    #: the `labels` entry holding the current model's hypothesis when no model folder is given
    model_label: str = "current_model"
    #: label entries that are not external systems
    ignore_labels: list[str] = field(default_factory=lambda: ["chosen", "agreement"])
    #: assignment order when a sample qualifies for several subsets (a looping output is also
    #: far from the agreed label: the more specific diagnosis, hallucination, comes first)
    priority: list[str] = field(default_factory=lambda: ["hallucination", "hard", "long",
                                                         "keyword", "regular"])
    #: at most this many samples per subset (0: no cap); shares stay equal
    per_subset_max: int = 0
    #: decoding the current model (when `model_dir` is given to the run)
    decode_batch: int = 8
    max_new_tokens: int = 128
    seed: int = 0
