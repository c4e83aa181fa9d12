"""Training configs as plain dataclasses, filled by `funfactory.config.load_config` (YAML + overrides).

One `TrainConfig` describes one run of one stage: the data (`LoaderConfig`, a list of weighted
shard streams), the model (size, where it starts from, which parts train: section 4.2's stages),
the optimiser and schedule, and the run's bookkeeping (checkpoints, validation, logging).
`funfactory train sft --config training/configs/sft-stage1.yaml run.max_steps=200` is the usual
entry; every field below can be overridden with a dotted key.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StreamConfig:
    """One weighted source of shards (a dataset, or one task's shards)."""
    name: str = "train"
    shards: list[str] = field(default_factory=list)  # folders, globs, brace patterns, fsspec URLs
    weight: float = 1.0  # relative draw probability when several streams are mixed
    cycle: bool = False  # restart (reshuffled) when exhausted instead of ending the epoch
    tasks: list[str] = field(default_factory=list)  # keep only these sample tasks (empty: all)


@dataclass
class AugmentConfig:
    """Online noise augmentation (sections 5.2, 5.6) on a fraction of training samples."""
    enabled: bool = False
    fraction: float = 0.3
    options: dict[str, str] = field(default_factory=dict)  # passed to the augmenter


@dataclass
class LoaderConfig:
    streams: list[StreamConfig] = field(default_factory=list)
    seed: int = 0
    shuffle_shards: bool = True
    shuffle_buffer: int = 500  # samples held per stream and worker; 0 or 1: no sample shuffle
    batch_size: int = 0  # > 0: fixed-size batches in arrival order (no duration bucketing)
    max_batch_seconds: float = 60.0  # padded seconds of audio per batch (count x longest)
    max_batch_size: int = 64
    bucket_boundaries: list[float] = field(default_factory=lambda: [2.0, 4.0, 6.0, 8.0, 12.0,
                                                                   16.0, 20.0, 30.0])
    min_duration: float = 0.1
    max_duration: float = 40.0
    language_weights: dict[str, float] = field(default_factory=dict)  # Fun-ASR-ML up/down sampling
    task_weights: dict[str, float] = field(default_factory=dict)
    num_workers: int = 0
    prefetch_factor: int = 2
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class ModelSetup:
    """Where the model of a run comes from and which of its parts train."""
    size: str = "tiny"
    init_from: str | None = None  # a saved FunASRModel folder (a previous stage's export)
    llm_path: str | None = None  # local causal-LM folder for a fresh model
    encoder_init: str | None = None  # an AED/Best-RQ checkpoint folder whose encoder to load
    encoder_llm_layers: int = 0  # Best-RQ: copy this many LLM layers into the encoder (section 4.1)
    ctc_vocab_size: int = 4000
    cmvn_utterances: int = 200  # utterances to estimate global CMVN for a fresh model
    stage: str = "adaptor"  # see funfactory.training.stages.STAGES
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0


@dataclass
class OptimConfig:
    lr: float = 5e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    warmup_steps: int = 100
    schedule: str = "cosine"  # cosine | linear | constant (after warmup)
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0


@dataclass
class RunConfig:
    out_dir: str = "runs/train"
    max_steps: int = 1000
    grad_accum: int = 1
    precision: str = "auto"  # auto (bf16 on GPU and on CPUs with AMX, else fp32) | fp32 | bf16 | fp16
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0
    log_every: int = 10
    save_every: int = 500
    keep_checkpoints: int = 3
    val_every: int = 500
    val_shards: list[str] = field(default_factory=list)
    val_max_utterances: int = 200
    val_batch_size: int = 8
    decode_method: str = "llm"  # llm | ctc, for validation transcripts
    # LLM transcripts per validation utterance, rescored by the CTC head (model/rescoring.py);
    # 1 (greedy) keeps validation cheap, 0 takes the model config's `decode_candidates`
    val_candidates: int = 1
    resume: bool = True  # continue from the latest checkpoint in out_dir when there is one
    distributed: str = "ddp"  # ddp | fsdp (only used under torchrun)
    threads: int = 0  # torch.set_num_threads when > 0
    tensorboard: bool = True


@dataclass
class BestRQConfig:
    """Best-RQ (section 4.1): random-projection quantizer targets for masked encoder frames."""
    codebook_size: int = 1024
    codebook_dim: int = 16
    num_codebooks: int = 1
    mask_prob: float = 0.04  # probability a frame starts a masked span
    mask_span: int = 8  # encoder frames per span (8 x 60 ms)
    noise_std: float = 0.1  # masked features are replaced by this noise
    quantizer_seed: int = 1234


@dataclass
class AEDConfig:
    """Supervised AED pre-training (section 4.1): encoder + attention decoder, CE + joint CTC."""
    decoder_layers: int = 2
    decoder_dim: int = 128
    decoder_heads: int = 4
    decoder_ffn: int = 512
    ctc_weight: float = 0.3
    label_smoothing: float = 0.1
    max_target_tokens: int = 256


@dataclass
class TrainConfig:
    data: LoaderConfig = field(default_factory=LoaderConfig)
    model: ModelSetup = field(default_factory=ModelSetup)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    bestrq: BestRQConfig = field(default_factory=BestRQConfig)
    aed: AEDConfig = field(default_factory=AEDConfig)
