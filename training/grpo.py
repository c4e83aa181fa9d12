"""GRPO for the LLM-based recogniser (Fun-ASR section 4.4), a task of the one training loop.

`GRPOTask` plugs into `training/trainer.py`'s `Trainer` like the SFT stages do, so GRPO streams
its RL shards through the same loader (shard shuffle, sample shuffle buffer, rank split, exact
mid-epoch resume), writes the same checkpoints (trainable weights, optimiser, schedule, every RNG,
loader state; rotated), follows the same learning-rate schedule and exports `final/`. The module
the trainer trains is `PolicyLogprobs` (the policy, whose forward gives the log-probabilities of
sampled responses), so under torchrun DDP averages the ranks' gradients; the frozen reference
and the rollout engine sit beside it in the task. One optimiser step, on a batch of B
utterances:

1. **weight sync**: when the policy changed since the rollout engine last received it (after
   every step, and after a resume), its LLM weights go to the engine (on-policy);
2. **encode**: the audio encoder and adaptor run once, batched; their embeddings are spliced into
   each utterance's prompt (left-padded `inputs_embeds`);
3. **rollout**: the rollout engine (`training/rollout.py`) samples a group of G transcripts per
   utterance with a seed of (seed, step), and returns each token's processed log-probability;
4. **reward**: each transcript gets the section 4.4.2 reward (`training/rewards.py`); advantages
   are normalised within each group (equation 1):  A_i = (r_i - mean(r)) / (std(r) + eps), with
   the population standard deviation of the group's G rewards;
5. **loss**: the policy maximises (equation 2)

       J = 1/N sum_i 1/|o_i| sum_t [ min(rho_it A_i, clip(rho_it, 1 - eps, 1 + eps) A_i)
                                     - beta * KL_t(pi_theta || pi_ref) ]

   over the N = B * G responses, with the token ratio against the rollout policy (equation 3)
   rho_it = pi_theta(o_it | q, o_i<t) / pi_rollout(o_it | q, o_i<t), both at the sampling
   temperature, and the per-token KL to the frozen reference policy estimated as
   exp(ref - logp) - (ref - logp) - 1 (always >= 0). The trainer runs the backward pass, clips
   the gradient norm and steps optimiser and schedule.

Each update follows its own rollouts, so rho is 1 up to numerics and the clip is inactive; the
clipped form stays so that an engine whose weights lag the policy (asynchronous rollouts) is
still bounded. Sampling uses the full vocabulary at the given temperature (no top-k / top-p): the
ratio's numerator is recomputed over the full vocabulary.

`run_grpo` is the entry point (`funfactory train grpo`): the run folder gets the trainer's
`metrics.jsonl` (one row per step: each reward component, advantages, KL, clip fraction, ratio,
response length, hallucinations, seconds per phase), `checkpoints/step-XXXXXXXX/` and `final/`
(a model folder, the input of `funfactory eval run --system model:FOLDER`). Running it again
resumes from the newest checkpoint and repeats the steps an uninterrupted run takes.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from funfactory.errors import FunfactoryError
from funfactory.model.asr import FunASRModel, set_trainable
from funfactory.model.llm import Prompt
from funfactory.model.lora import merged_llm_weights
from funfactory.training.collate import pad_waveforms
from funfactory.training.config import (LoaderConfig, OptimConfig, RunConfig, StreamConfig,
                                        TrainConfig)
from funfactory.training.rewards import (KeywordExtractor, RewardBreakdown, RewardConfig,
                                         RewardFunction, RewardInput)
from funfactory.training.rollout import (PromptBatch, RolloutEngine, Rollouts, SamplingConfig,
                                         TransformersRollout, build_rollout_engine,
                                         response_logprobs)

SAMPLE_RATE = 16000
PHASES = ("weight_sync", "encode", "rollout", "reward", "loss")
RL_MAX_SECONDS = 3600.0  # the RL set is already selected (4.4.3): the loader drops none of it


@dataclass
class GRPOConfig:
    group_size: int = 4  # G hypotheses per utterance
    utterances_per_step: int = 4  # B
    steps: int = 100
    learning_rate: float = 1e-5
    warmup_steps: int = 0
    schedule: str = "constant"  # constant | cosine | linear after warmup (the trainer's schedule)
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    clip_epsilon: float = 0.2
    kl_beta: float = 0.04
    advantage_eps: float = 1e-4
    max_new_tokens: int = 64
    temperature: float = 1.0
    max_grad_norm: float = 1.0
    trainable: list[str] = field(default_factory=lambda: ["llm"])
    # The LLM's token embeddings (tied to its output layer in Qwen3) stay as SFT left them: RL
    # reshapes which tokens are chosen, not what they mean, and it halves the update's cost.
    freeze_llm_embeddings: bool = True
    shuffle_buffer: int = 100  # RL samples held in the loader's shuffle buffer
    save_every: int = 50
    keep_checkpoints: int = 3
    precision: str = "fp32"  # the trainer's run.precision; ratios want fp32 log-probabilities
    seed: int = 0
    reward: RewardConfig = field(default_factory=RewardConfig)


@dataclass
class RLUtterance:
    key: str
    audio: np.ndarray  # 16 kHz mono float32
    reference: str
    language: str | None = None
    prompt: dict | None = None
    keywords: list[str] | None = None
    subset: str | None = None

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    @classmethod
    def from_sample(cls, key: str, meta: dict, audio: np.ndarray) -> "RLUtterance":
        """From a shard sample: keywords from the RL pipeline's tag, else the prompt's hotwords."""
        rl = meta.get("rl") or {}
        prompt = meta.get("prompt") or {}
        keywords = rl.get("keywords") or prompt.get("hotwords") or None
        return cls(key, np.asarray(audio, dtype=np.float32), meta.get("text", ""),
                   meta.get("language") or None, prompt, list(keywords) if keywords else None,
                   rl.get("subset"))


def read_rl_utterances(urls) -> list[RLUtterance]:
    """A (small) held-out RL set in memory, for `evaluate_rollouts`; training streams instead."""
    from funfactory.shards.reader import ShardReader

    reader = ShardReader(urls)
    out = [RLUtterance.from_sample(s.key, s.meta, s.audio) for s in reader]
    if not out:
        raise FunfactoryError(f"no readable samples in {urls}: errors {dict(reader.errors)}")
    return out


def collate_utterances(samples) -> dict:
    """The streaming loader's batch for GRPO: the utterances and their seconds of audio."""
    utterances = [RLUtterance.from_sample(s.key, s.meta, s.audio) for s in samples]
    return {"utterances": utterances, "keys": [u.key for u in utterances],
            "seconds": sum(u.duration for u in utterances)}


# ---- equations 1-3 -------------------------------------------------------------------------


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """Equation 1: rewards (B*G,) utterance-major -> advantages normalised within each group."""
    if rewards.numel() % group_size:
        raise FunfactoryError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    grouped = rewards.float().view(-1, group_size)
    mean = grouped.mean(dim=1, keepdim=True)
    std = grouped.std(dim=1, keepdim=True, unbiased=False)
    return ((grouped - mean) / (std + eps)).view(-1)


def token_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token KL(pi_theta || pi_ref) estimate exp(ref - logp) - (ref - logp) - 1."""
    delta = ref_logprobs - logprobs
    return delta.exp() - delta - 1.0


@dataclass
class ObjectiveStats:
    loss: float
    kl: float
    clip_fraction: float
    ratio_mean: float


def grpo_loss(logprobs: torch.Tensor, rollout_logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
              advantages: torch.Tensor, mask: torch.Tensor, clip_epsilon: float, kl_beta: float
              ) -> tuple[torch.Tensor, ObjectiveStats]:
    """Equations 2-3 as a loss (-J). All token tensors are (N, T); `advantages` is (N,)."""
    mask = mask.to(logprobs.dtype)
    ratio = torch.exp(logprobs - rollout_logprobs)
    adv = advantages[:, None].to(logprobs.dtype)
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - clip_epsilon, 1.0 + clip_epsilon) * adv
    surrogate = torch.minimum(unclipped, clipped)
    kl = token_kl(logprobs, ref_logprobs)
    per_token = surrogate - kl_beta * kl
    lengths = mask.sum(dim=1).clamp(min=1.0)
    objective = ((per_token * mask).sum(dim=1) / lengths).mean()
    tokens = mask.sum().clamp(min=1.0)
    with torch.no_grad():
        stats = ObjectiveStats(
            loss=float(-objective),
            kl=float((kl * mask).sum() / tokens),
            clip_fraction=float(((clipped < unclipped).to(mask.dtype) * mask).sum() / tokens),
            ratio_mean=float((ratio * mask).sum() / tokens))
    return -objective, stats


# ---- the task ----------------------------------------------------------------------------


@dataclass
class EncodedBatch:
    audio_embeds: torch.Tensor
    audio_lengths: torch.Tensor
    prompts: list[Prompt]


def encode_batch(model: FunASRModel, utterances: Sequence[RLUtterance], grad: bool = False
                 ) -> EncodedBatch:
    waveforms, lengths = pad_waveforms([u.audio for u in utterances])
    device = next(model.parameters()).device
    with torch.set_grad_enabled(grad):
        enc = model.encode_audio(waveforms.to(device), lengths.to(device))
    prompts = [Prompt.from_sample(u.prompt) for u in utterances]
    if model.config.ctc_hypothesis_in_prompt:  # the policy decodes as `transcribe` does
        prompts = model.prompts_with_hypotheses(enc, prompts)
    return EncodedBatch(enc.audio_embeds, enc.audio_lengths, prompts)


def prompt_batch(model: FunASRModel, encoded: EncodedBatch, repeat: int = 1) -> PromptBatch:
    inputs = model.build_llm_inputs(encoded.audio_embeds, encoded.audio_lengths, encoded.prompts,
                                    padding_side="left")
    return PromptBatch(inputs.inputs_embeds.repeat_interleave(repeat, 0),
                       inputs.attention_mask.repeat_interleave(repeat, 0))


def score_rollouts(rewards: RewardFunction, utterances: Sequence[RLUtterance], rollouts: Rollouts
                   ) -> list[RewardBreakdown]:
    g = rollouts.group_size
    out: list[RewardBreakdown] = []
    for b, u in enumerate(utterances):
        target = RewardInput(u.reference, u.language, u.keywords)
        out += rewards(rollouts.texts[b * g:(b + 1) * g], target)
    return out


def reward_summary(breakdowns: Sequence[RewardBreakdown]) -> dict:
    n = max(1, len(breakdowns))
    recalls = [b.keyword_recall for b in breakdowns if b.keyword_recall is not None]
    return {
        "reward": sum(b.total for b in breakdowns) / n,
        "r1_accuracy": sum(b.r1_accuracy for b in breakdowns) / n,
        "r2_keywords": sum(b.r2_keywords for b in breakdowns) / n,
        "r3_hallucination": sum(b.r3_hallucination for b in breakdowns) / n,
        "r4_language": sum(b.r4_language for b in breakdowns) / n,
        "language_mismatches": sum(not b.language_match for b in breakdowns),
        "hallucinations": sum(b.hallucinated for b in breakdowns),
        "error_rate": sum(b.error_rate for b in breakdowns) / n,
        "keyword_recall": sum(recalls) / len(recalls) if recalls else None,
    }



class StepTimer:
    def __init__(self):
        self.seconds = {phase: 0.0 for phase in PHASES}

    def phase(self, name: str):
        timer = self

        class _Phase:
            def __enter__(self):
                self.start = time.perf_counter()

            def __exit__(self, *exc):
                timer.seconds[name] += time.perf_counter() - self.start

        return _Phase()


class PolicyLogprobs(torch.nn.Module):
    """The policy as the module the trainer trains: its forward gives the log-probabilities of
    sampled responses, so under torchrun DDP wraps it and averages the ranks' gradients."""

    def __init__(self, asr: FunASRModel):
        super().__init__()
        self.asr = asr

    def audio_trainable(self) -> bool:
        return any(p.requires_grad for part in ("encoder", "adaptor")
                   for p in getattr(self.asr, part).parameters())

    def forward(self, utterances: Sequence[RLUtterance], encoded: EncodedBatch,
                rollouts: Rollouts, temperature: float) -> torch.Tensor:
        """(B*G, T) log-probabilities; the audio is encoded again with gradients when the
        encoder or adaptor train, else `encoded` (the rollouts' own encoding) is reused."""
        if self.audio_trainable():
            encoded = encode_batch(self.asr, utterances, grad=True)
        return response_logprobs(self.asr.llm,
                                 prompt_batch(self.asr, encoded, repeat=rollouts.group_size),
                                 rollouts.tokens, rollouts.mask, temperature)


class GRPOTask:
    """GRPO as a trainer task: `loss(model, batch)` rolls out, scores and returns -J."""

    def __init__(self, config: GRPOConfig, model: FunASRModel,
                 reference: FunASRModel | None = None, rollout: RolloutEngine | None = None,
                 extractor: KeywordExtractor | None = None):
        if config.temperature <= 0:
            raise FunfactoryError(f"GRPO temperature={config.temperature}: sampling needs a "
                                  "temperature above 0 (1.0 is the policy itself)")
        self.config = config
        names = set_trainable(model, config.trainable)
        if config.freeze_llm_embeddings:
            model.llm.get_input_embeddings().weight.requires_grad_(False)
            names = [n for n, p in model.named_parameters() if p.requires_grad]
        if not names:
            raise FunfactoryError(f"nothing to train: parts {config.trainable} have no parameters")
        self.model = PolicyLogprobs(model)
        self.reference = reference if reference is not None else copy.deepcopy(model)
        self.reference.eval().requires_grad_(False)
        self.rollout = rollout or TransformersRollout(model.llm, model.tokenizer)
        self.rewards = RewardFunction(config.reward, extractor)
        self.synced_step: int | None = None

    def sampling(self, step: int) -> SamplingConfig:
        c = self.config
        return SamplingConfig(n=c.group_size, max_new_tokens=c.max_new_tokens,
                              temperature=c.temperature, seed=c.seed * 1_000_003 + step)

    def loss(self, model, batch: dict) -> dict:
        """`model` is `self.model`, possibly wrapped in DDP by the trainer."""
        from funfactory.training.trainer import unwrap

        # Dropout off: the ratio compares the policy with the rollout engine, which has none.
        model.eval()
        policy: FunASRModel = unwrap(model).asr
        c, g, step = self.config, self.config.group_size, int(batch["step"])
        utterances = batch["utterances"]
        timer = StepTimer()
        with timer.phase("weight_sync"):
            if self.synced_step != step:
                self.rollout.sync_weights(merged_llm_weights(policy.llm))
                self.synced_step = step
        with timer.phase("encode"), torch.no_grad():
            encoded = encode_batch(policy, utterances)
            prompts = prompt_batch(policy, encoded)
        with timer.phase("rollout"):
            rollouts = self.rollout.generate(prompts, self.sampling(step))
        with timer.phase("reward"):
            breakdowns = score_rollouts(self.rewards, utterances, rollouts)
            rewards = torch.tensor([b.total for b in breakdowns])
            advantages = group_advantages(rewards, g, c.advantage_eps).to(rollouts.logprobs.device)
        with timer.phase("loss"):
            with torch.no_grad():
                ref_encoded = (encode_batch(self.reference, utterances)
                               if unwrap(model).audio_trainable() else encoded)
                ref_logprobs = response_logprobs(
                    self.reference.llm, prompt_batch(self.reference, ref_encoded, repeat=g),
                    rollouts.tokens, rollouts.mask, c.temperature)
            logprobs = model(utterances, encoded, rollouts, c.temperature)
            loss, stats = grpo_loss(logprobs, rollouts.logprobs, ref_logprobs, advantages,
                                    rollouts.mask, c.clip_epsilon, c.kl_beta)
        audio_seconds = sum(u.duration for u in utterances)
        total = sum(timer.seconds.values())
        summary = reward_summary(breakdowns)
        summary.pop("keyword_recall")  # absent without keywords; ranks must log the same names
        return {"loss": loss, **summary,
                "reward_std": float(rewards.std(unbiased=False)),
                "advantage_abs_mean": float(advantages.abs().mean()),
                "kl": stats.kl, "clip_fraction": stats.clip_fraction,
                "ratio_mean": stats.ratio_mean,
                "response_length": float(rollouts.lengths.float().mean()),
                "utterances": len(utterances), "group_size": g,
                **{f"time_{k}": v for k, v in timer.seconds.items()},
                "rtf_before_backward": total / max(audio_seconds, 1e-9)}

    def export(self, model: PolicyLogprobs, folder: Path) -> None:
        from funfactory.model.checkpoint import save_model

        save_model(model.asr, folder)


def train_config(config: GRPOConfig, shards: str | Sequence[str], out_dir: str | Path,
                 device: str = "cpu") -> TrainConfig:
    """The trainer's view of a GRPO run: one RL stream in batches of B utterances."""
    urls = [shards] if isinstance(shards, (str, Path)) else list(shards)
    return TrainConfig(
        data=LoaderConfig(streams=[StreamConfig(name="rl", shards=[str(u) for u in urls])],
                          seed=config.seed, batch_size=config.utterances_per_step,
                          shuffle_buffer=config.shuffle_buffer,
                          max_duration=RL_MAX_SECONDS),
        optim=OptimConfig(lr=config.learning_rate, weight_decay=config.weight_decay,
                          warmup_steps=config.warmup_steps, schedule=config.schedule,
                          min_lr_ratio=config.min_lr_ratio, grad_clip=config.max_grad_norm),
        run=RunConfig(out_dir=str(out_dir), max_steps=config.steps, save_every=config.save_every,
                      keep_checkpoints=config.keep_checkpoints, val_every=0, log_every=1,
                      device=device, seed=config.seed, precision=config.precision))


def run_grpo(init_model: str | Path, shards: str | Sequence[str], out_dir: str | Path,
             config: GRPOConfig, rollout: str = "transformers", device: str = "cpu",
             extractor: KeywordExtractor | None = None) -> dict:
    """GRPO from `init_model` (a saved model folder, also the frozen reference policy) on RL
    shards, to `config.steps` steps, resuming from the newest checkpoint in `out_dir`. Returns
    the last step's metrics; the tuned model is `out_dir/final`. Under torchrun each rank rolls
    out its own share of the shards with its own engine, and DDP averages the gradients."""
    from funfactory.model.checkpoint import load_model
    from funfactory.training.loader import StreamingLoader
    from funfactory.training.trainer import Trainer, setup_distributed

    train = train_config(config, shards, out_dir, device)
    info = setup_distributed(train.run)
    torch.manual_seed(config.seed)
    model = load_model(init_model).to(info.device)
    reference = load_model(init_model).to(info.device)
    llm_dir = Path(out_dir) / f"rollout_llm-rank{info.rank}" if rollout == "vllm" else None
    if llm_dir is not None:
        model.llm.save_pretrained(llm_dir)
        model.tokenizer.save_pretrained(llm_dir)
    engine = build_rollout_engine(rollout, model.llm, model.tokenizer, llm_dir=llm_dir)
    task = GRPOTask(config, model, reference, engine, extractor)
    loader = StreamingLoader(train.data, info.rank, info.world_size, collate=collate_utterances)
    return Trainer(train, task, loader, info).fit()


@torch.no_grad()
def evaluate_rollouts(model: FunASRModel, engine: RolloutEngine, utterances: Sequence[RLUtterance],
                      sampling: SamplingConfig, rewards: RewardFunction | None = None,
                      batch_size: int = 8) -> tuple[dict, list[str]]:
    """Reward summary of `sampling.n` samples (or greedy) per utterance, and the texts."""
    rewards = rewards or RewardFunction()
    model.eval()
    breakdowns, texts = [], []
    for start in range(0, len(utterances), batch_size):
        chunk = list(utterances[start:start + batch_size])
        encoded = encode_batch(model, chunk)
        rollouts = engine.generate(prompt_batch(model, encoded), sampling)
        breakdowns += score_rollouts(rewards, chunk, rollouts)
        texts += rollouts.texts
    return reward_summary(breakdowns), texts


