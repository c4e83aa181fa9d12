"""Model sizes as plain dataclasses: `tiny` (unit tests), `cpu` (a recogniser a CPU trains in
minutes: a pretrained Whisper base encoder and SmolLM2-135M), `nano` (0.2B + 0.6B), `full`
(0.7B + 7B).

Fun-ASR (section 2) pairs an audio encoder with a Qwen3 LLM: Fun-ASR-nano is a 0.2B encoder with
a 0.6B LLM, Fun-ASR a 0.7B encoder with a 7B LLM. The encoder layers here have Qwen3's shapes
(RMSNorm, grouped-query attention with q/k norms and RoPE, SwiGLU MLP), so the `nano` encoder can be
initialised from the first 12 layers of a Qwen3-0.6B checkpoint (section 4.1). `LLMShape` records
the decoder's shape so parameter counts need no checkpoint; at run time the LLM comes from
`llm_path`, any local causal-LM folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from funfactory.errors import FunfactoryError


@dataclass
class FrontendConfig:
    sample_rate: int = 16000
    num_mel_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    low_freq: float = 20.0
    preemph_coeff: float = 0.97
    lfr_m: int = 7  # low frame rate: stack 7 fbank frames ...
    lfr_n: int = 6  # ... every 6 frames: one encoder frame per 60 ms

    @property
    def encoder_frame_seconds(self) -> float:
        return self.frame_shift_ms * self.lfr_n / 1000.0

    @property
    def feature_dim(self) -> int:
        return self.num_mel_bins * self.lfr_m


@dataclass
class TransformerConfig:
    """One stack of pre-LN transformer layers with Qwen3's parameter shapes."""
    d_model: int = 128
    num_layers: int = 4
    num_heads: int = 2
    num_kv_heads: int = 2
    head_dim: int = 64
    ffn_dim: int = 384
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    dropout: float = 0.0


@dataclass
class EncoderConfig(TransformerConfig):
    # 0: full attention (offline only); N > 0: chunk-causal attention over chunks of N encoder
    # frames, so streaming with a cache of the past equals offline decoding (12 x 60 ms = 720 ms).
    chunk_frames: int = 0


@dataclass
class AdaptorConfig(TransformerConfig):
    num_layers: int = 2
    downsample: int = 2  # concatenate this many encoder frames before the layers


@dataclass
class WhisperEncoderConfig:
    """A Whisper encoder used as the audio encoder (section 4.1 initialises from an AED encoder).

    `source` names the weights: a packaged CTranslate2 Whisper (`whisper-base`,
    `whisper-tiny.en`) or a local Hugging Face / CTranslate2 Whisper folder; empty keeps random
    weights (shape tests). The defaults are Whisper base's shape.
    """
    source: str = "whisper-base"
    n_mels: int = 80
    d_model: int = 512
    num_layers: int = 6
    num_heads: int = 8
    max_frames: int = 1500  # 30 s at 20 ms
    pad_seconds: float = 3.0  # silence appended to each clip: unpadded clips lose their last ~200 ms
    chunk_frames: int = 0  # full attention: offline decoding only
    frozen: bool = True  # a frozen encoder's outputs can be cached per utterance


@dataclass
class CTCHeadConfig(TransformerConfig):
    """The CTC decoder on the encoder: `num_layers` transformer layers (0: a linear head)."""
    num_layers: int = 0


@dataclass
class MaskingConfig:
    """SpecAugment-style masks on the encoder output in training (`funfactory.model.masking`);
    zero spans and zero bands turn it off."""
    time_masks_per_second: float = 0.0
    max_time_frames: int = 10
    channel_masks: int = 0
    max_channels: int = 64
    frame_seconds: float = 0.02  # of the encoder output (Whisper: 20 ms)


@dataclass
class LLMShape:
    """The decoder's shape (Qwen3 fields), for meta-device counts and the tiny test LLM."""
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 2
    num_kv_heads: int = 2
    head_dim: int = 64
    intermediate_size: int = 384
    vocab_size: int = 151936
    tie_word_embeddings: bool = True


@dataclass
class ModelConfig:
    size: str = "tiny"
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    adaptor: AdaptorConfig = field(default_factory=AdaptorConfig)
    llm: LLMShape = field(default_factory=LLMShape)
    ctc_vocab_size: int = 0  # set from the CTC vocabulary when a model is built
    llm_path: str | None = None  # local causal-LM folder (tokenizer + weights)
    whisper: WhisperEncoderConfig | None = None  # set: a Whisper encoder and log-mel frontend
    ctc_head: CTCHeadConfig = field(default_factory=CTCHeadConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    # "plain": the CTC head learns lower case without punctuation (`eval.textnorm.plain_text`),
    # what characters can hear; the LLM writes the formatted transcript. "raw": the label as is.
    ctc_text: str = "raw"
    # Section 2 / Figure 2: the LLM reads the CTC hypothesis in its prompt. In training the
    # hypothesis is the current CTC head's best path with each character replaced, dropped or
    # doubled at a rate drawn up to `hypothesis_noise`, so the LLM learns to correct, not copy.
    ctc_hypothesis_in_prompt: bool = False
    hypothesis_noise: float = 0.0
    system_prompt: str = "You are a speech recognition model."  # "": no system turn
    instruction: str = "Transcribe the audio."
    ctc_weight: float = 1.0  # loss = ctc_weight * CTC + llm_weight * LLM cross-entropy
    llm_weight: float = 1.0
    # Decoding: LLM transcripts per utterance (greedy + samples), the CTC head choosing among
    # them (model/rescoring.py); 1: the greedy transcript alone.
    decode_candidates: int = 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _tiny() -> ModelConfig:
    return ModelConfig(
        size="tiny",
        encoder=EncoderConfig(d_model=128, num_layers=4, num_heads=2, num_kv_heads=2, head_dim=64,
                              ffn_dim=384),
        adaptor=AdaptorConfig(d_model=128, num_layers=2, num_heads=2, num_kv_heads=2,
                              head_dim=64, ffn_dim=384, downsample=1),
        llm=LLMShape())


def _nano() -> ModelConfig:
    # Encoder: Qwen3-0.6B layer shapes x 12; LLM: Qwen3-0.6B.
    return ModelConfig(
        size="nano",
        encoder=EncoderConfig(d_model=1024, num_layers=12, num_heads=16, num_kv_heads=8,
                              head_dim=128, ffn_dim=3072),
        adaptor=AdaptorConfig(d_model=1024, num_layers=2, num_heads=16, num_kv_heads=8,
                              head_dim=128, ffn_dim=2048, downsample=2),
        llm=LLMShape(hidden_size=1024, num_layers=28, num_heads=16, num_kv_heads=8, head_dim=128,
                     intermediate_size=3072, vocab_size=151936, tie_word_embeddings=True))


def _full() -> ModelConfig:
    # Encoder: 26 wide layers (~0.7B); LLM: the Qwen3-8B shape (7B without its embeddings).
    return ModelConfig(
        size="full",
        encoder=EncoderConfig(d_model=1280, num_layers=26, num_heads=20, num_kv_heads=20,
                              head_dim=64, ffn_dim=5120),
        adaptor=AdaptorConfig(d_model=1280, num_layers=2, num_heads=20, num_kv_heads=20,
                              head_dim=64, ffn_dim=2560, downsample=2),
        llm=LLMShape(hidden_size=4096, num_layers=36, num_heads=32, num_kv_heads=8, head_dim=128,
                     intermediate_size=12288, vocab_size=151936, tie_word_embeddings=False))


def _cpu() -> ModelConfig:
    # A recogniser a CPU trains in minutes: the pretrained Whisper base encoder (frozen), a
    # 2-layer transformer CTC head over byte/character tokens, an adaptor (160 ms per audio
    # token) into the packaged SmolLM2-135M-Instruct, which reads the CTC hypothesis.
    return ModelConfig(
        size="cpu",
        whisper=WhisperEncoderConfig(),
        encoder=EncoderConfig(d_model=512, num_layers=0),
        adaptor=AdaptorConfig(d_model=256, num_layers=1, num_heads=4, num_kv_heads=4, head_dim=64,
                              ffn_dim=768, downsample=8),
        ctc_head=CTCHeadConfig(d_model=256, num_layers=2, num_heads=4, num_kv_heads=4, head_dim=64,
                               ffn_dim=768, dropout=0.1),
        llm=LLMShape(hidden_size=576, num_layers=30, num_heads=9, num_kv_heads=3, head_dim=64,
                     intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True),
        llm_path="smollm2-135m-instruct",
        # No system turn and a short instruction: the fixed text was 30 of about 100 tokens an
        # utterance; without it LLM steps ran 16 % faster, held-out WER within run-to-run spread.
        system_prompt="", instruction="Transcribe the audio; fix the CTC hypothesis.",
        masking=MaskingConfig(time_masks_per_second=1.0, max_time_frames=8, channel_masks=2,
                              max_channels=64),
        ctc_text="plain", ctc_hypothesis_in_prompt=True, hypothesis_noise=0.15,
        decode_candidates=9)


SIZES = {"tiny": _tiny, "cpu": _cpu, "nano": _nano, "full": _full}


def model_config(size: str, **overrides) -> ModelConfig:
    """The named size's config; keyword overrides replace top-level fields."""
    if size not in SIZES:
        raise FunfactoryError(f"model size {size!r} is unknown; choose one of {sorted(SIZES)}")
    return dataclasses.replace(SIZES[size](), **overrides)

