"""Configuration of the labelling pipeline (``funfactory.config.load_config(LabelConfig, ...)``).

Every field has a default; a YAML file and ``key.sub=value`` overrides change them. The config
hash goes into every sample's lineage and pins the work folder for resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from funfactory.asr.registry import BackendSpec

AUDIO_EXTENSIONS = ["wav", "flac", "mp3", "ogg", "opus"]


@dataclass
class IngestConfig:
    format: str = "auto"  # auto | folder | jsonl | lhotse | kaldi | nemo | funasr
    extensions: list[str] = field(default_factory=lambda: list(AUDIO_EXTENSIONS))
    window_seconds: float = 30.0  # decode/resample/VAD window; memory is bounded by it
    language: str = ""  # language hint for sources without one ("" = detect)
    published_at: str = ""  # default published_at (YYYY-MM-DD) for sources without one
    follow_external_links: bool = False  # follow folder links whose target is outside the folder


@dataclass
class VadConfig:
    threshold: float = 0.5
    min_speech_seconds: float = 0.25  # shorter speech blips are not speech
    min_silence_seconds: float = 0.3  # silence that ends a speech region
    pad_seconds: float = 0.2  # real audio kept each side of a segment (never past a neighbour)
    min_segment_seconds: float = 1.0  # shorter segments are rejected (too_short)
    max_segment_seconds: float = 30.0  # longer regions are split at their quietest frame
    max_merge_gap_seconds: float = 1.0  # regions closer than this merge up to max_segment
    long_form: bool = False  # contextual data: segments up to long_form_max_seconds
    long_form_max_seconds: float = 300.0

    @property
    def max_seconds(self) -> float:
        return self.long_form_max_seconds if self.long_form else self.max_segment_seconds


@dataclass
class AsrConfig:
    backends: list[BackendSpec] = field(default_factory=lambda: [
        BackendSpec(kind="whisper-base"), BackendSpec(kind="whisper-tiny-en"),
        BackendSpec(kind="pocketsphinx")])
    batch_size: int = 8  # segments per inference batch (closed between decoding windows)
    # consecutive segments of a source decoded together in one Whisper window of at most this
    # many seconds (0: every segment alone), with this much silence between them
    pack_seconds: float = 30.0
    pack_gap_seconds: float = 0.3


@dataclass
class VoteConfig:
    method: str = "medoid"  # medoid: reliability-weighted medoid | rover: weighted word vote
    # reject when the chosen label's estimated error rate (WER/CER/MER) is above this; None:
    # the thresholds fitted per language with the confidence model, which keep labels under 5 %
    # error at every SNR of the calibration set (label_confidence.json:
    # max_estimated_wer_by_language)
    max_estimated_wer: float | None = None
    # per-language thresholds that replace it, e.g. {zh: 0.3} to keep Whisper base's Chinese
    # labels while no second Chinese system exists (a quality choice the user makes)
    max_estimated_wer_by_language: dict = field(default_factory=dict)
    min_hypotheses: int = 1  # reject segments with fewer non-failed hypotheses
    # the job's estimate of each system's error rate comes from a first pass over this many
    # segments (whole sources, in a fixed order); 0: each system judged by its own scores alone
    reliability_sample_segments: int = 300
    confidence_model: str = ""  # a fitted label_confidence.json ("" = the shipped one)
    # the chosen hypothesis' own scores (Whisper's fallback rules), checked on every segment
    max_compression_ratio: float = 2.4  # above: a repetition loop
    max_repeats: int = 4  # an n-gram (n <= 4) repeated more often in a row: a loop
    # checked where one system alone covers the language (nothing to vote against)
    min_avg_logprob: float = -1.0  # below: low likelihood
    max_no_speech_prob: float = 0.6  # above, with low likelihood: text made up over no speech


@dataclass
class ReferenceConfig:
    # toolkit: transcripts of Kaldi / NeMo / Fun-ASR inputs are the labels | always | never
    as_label: str = "toolkit"
    max_error: float = 0.5  # best system's error rate against a transcript it must not exceed


@dataclass
class ItnConfig:
    enabled: bool = True  # text = ITN(label); raw_text = the chosen hypothesis as spoken


@dataclass
class FilterConfig:
    min_duration_seconds: float = 0.5
    max_duration_seconds: float = 30.0  # raised to long_form_max_seconds in long-form mode
    max_chars_per_second: dict = field(default_factory=lambda: {"en": 25.0, "zh": 10.0,
                                                                "zh-en": 12.0})
    min_chars_per_second: dict = field(default_factory=lambda: {"en": 2.0, "zh": 0.8,
                                                                "zh-en": 1.0})
    language_match: bool = True
    max_repeats: int = 4  # an n-gram (n <= 4) repeated more often in a row is a hallucination
    hallucination_phrases: list[str] = field(default_factory=lambda: [
        "thank you for watching", "thanks for watching", "please subscribe",
        "subtitles by", "字幕由", "请不吝点赞", "订阅"])


@dataclass
class OutputConfig:
    dataset: str = "label"
    split: str = "train"
    max_count: int = 1000
    max_bytes: int = 256 << 20
    work_dir: str = ""  # default: OUT/_work
    report_dir: str = ""  # default: OUT/_reports


@dataclass
class LabelConfig:
    ingest: IngestConfig = field(default_factory=IngestConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    vote: VoteConfig = field(default_factory=VoteConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    itn: ItnConfig = field(default_factory=ItnConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
