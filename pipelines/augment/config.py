"""Configuration of the augment pipeline (YAML + dotted overrides through funfactory.config)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class NoiseSourcesConfig:
    #: 'debian', 'debian:crowd+ambient', 'folder:/path[=collection]', 'manifest:/path.jsonl';
    #: one source file in four (per collection) is test noise (funfactory.synth.noise.split_for)
    sources: list[str] = field(default_factory=lambda: ["debian"])
    #: which side of the split this run draws from ('train' for training data, 'test' for test sets)
    split: str = "train"


@dataclass
class SnrConfig:
    mean_db: float = 10.0
    std_db: float = 5.0
    min_db: float = -5.0
    max_db: float = 30.0


@dataclass
class NoiseOnlyConfig:
    #: share of input utterances that also yield a noise-only sample (section 5.6)
    share: float = 0.1
    min_seconds: float = 1.0
    max_seconds: float = 4.0
    #: reject a noise stretch in which silero-vad hears speech, and draw another
    vad_check: bool = True
    max_tries: int = 4


@dataclass
class RirConfig:
    #: probability that a noisy copy is first convolved with an impulse response (0 = off)
    probability: float = 0.0
    #: impulse response files or folders; empty = Debian jconvolver street response
    paths: list[str] = field(default_factory=list)


@dataclass
class AugmentConfig:
    seed: int = 0
    dataset: str = "augmented"
    split: str = "train"
    #: share of input utterances that get a noisy copy
    noisy_share: float = 1.0
    #: also copy each clean input sample to the output
    keep_clean: bool = False
    noise: NoiseSourcesConfig = field(default_factory=NoiseSourcesConfig)
    snr: SnrConfig = field(default_factory=SnrConfig)
    noise_only: NoiseOnlyConfig = field(default_factory=NoiseOnlyConfig)
    rir: RirConfig = field(default_factory=RirConfig)
    max_count: int = 1000
    #: spectrogram examples of each kind in the report
    report_examples: int = 2
