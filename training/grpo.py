"""GRPO for the LLM-based recogniser (Fun-ASR section 4.4).

One step, on B utterances:

1. **encode**: the audio encoder and adaptor run once, batched; their embeddings are spliced into
   each utterance's prompt (left-padded `inputs_embeds`).
2. **rollout**: the rollout engine (`training/rollout.py`) samples a group of G transcripts per
   utterance and returns each token's log-probability under the rollout policy.
3. **reward**: each transcript gets the section 4.4.2 reward (`training/rewards.py`); advantages
   are normalised within each group (equation 1):  A_i = (r_i - mean(r)) / (std(r) + eps), with
   the population standard deviation of the group's G rewards.
4. **update**: the policy maximises (equation 2)

       J = 1/N sum_i 1/|o_i| sum_t [ min(rho_it A_i, clip(rho_it, 1 - eps, 1 + eps) A_i)
                                     - beta * KL_t(pi_theta || pi_ref) ]

   over the N = B * G responses, with the token ratio against the rollout policy (equation 3)
   rho_it = pi_theta(o_it | q, o_i<t) / pi_rollout(o_it | q, o_i<t), and the per-token KL to the
   frozen reference policy estimated as exp(ref - logp) - (ref - logp) - 1 (always >= 0).
   `mini_batches` > 1 splits the groups into several optimizer steps on the same rollouts, so
   later mini-batches see rho != 1 and the clip acts.
5. **weight sync**: the policy's LLM weights go to the rollout engine after every step
   (on-policy).

Runs write `grpo_log.jsonl` (one line per step: each reward component, KL, clip fraction,
response length, hallucination count, and seconds per phase with the real-time factor) and
checkpoints `checkpoints/step-XXXXXX/` (model folder, optimizer, trainer state); `resume()`
continues from the latest one. Sampling seeds derive from (seed, step) and data order is fixed, so
a resumed run repeats the steps an uninterrupted run would take.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from funfactory.errors import FunfactoryError
from funfactory.model.asr import FunASRModel, set_trainable
from funfactory.model.llm import Prompt
from funfactory.training.rewards import (KeywordExtractor, RewardBreakdown, RewardConfig,
                                         RewardFunction, RewardInput)
from funfactory.training.rollout import (PromptBatch, RolloutEngine, Rollouts, SamplingConfig,
                                         TransformersRollout)
from funfactory.model.lora import merged_llm_weights

SAMPLE_RATE = 16000
AUDIO_PARTS = ("encoder", "adaptor", "ctc")
PHASES = ("encode", "rollout", "reward", "update", "weight_sync")


@dataclass
class GRPOConfig:
    group_size: int = 4  # G hypotheses per utterance
    utterances_per_step: int = 4  # B
    steps: int = 100
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    clip_epsilon: float = 0.2
    kl_beta: float = 0.04
    advantage_eps: float = 1e-4
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    mini_batches: int = 1
    max_grad_norm: float = 1.0
    trainable: list[str] = field(default_factory=lambda: ["llm"])
    # The LLM's token embeddings (tied to its output layer in Qwen3) stay as SFT left them: RL
    # reshapes which tokens are chosen, not what they mean, and it halves the update's cost.
    freeze_llm_embeddings: bool = True
    save_every: int = 50
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
    from funfactory.shards.reader import ShardReader

    reader = ShardReader(urls)
    out = [RLUtterance.from_sample(s.key, s.meta, s.audio) for s in reader]
    if not out:
        raise FunfactoryError(f"no readable samples in {urls}: errors {dict(reader.errors)}")
    return out


def step_batches(utterances: Sequence[RLUtterance], per_step: int, start_step: int = 0
                 ) -> Iterator[list[RLUtterance]]:
    """Fixed-order batches cycling over `utterances`; batch k is the same on every run."""
    if not utterances:
        raise FunfactoryError("no utterances to train on")
    step = start_step
    while True:
        first = step * per_step
        yield [utterances[(first + i) % len(utterances)] for i in range(per_step)]
        step += 1


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


def response_logprobs(llm: torch.nn.Module, prompts: PromptBatch, tokens: torch.Tensor,
                      response_mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log pi(o_t | prompt, o_<t) for every response token; prompts already repeated per sample."""
    response = llm.get_input_embeddings()(tokens).to(prompts.embeds.dtype)
    embeds = torch.cat([prompts.embeds, response], dim=1)
    mask = torch.cat([prompts.mask.long(), response_mask.long()], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    width = tokens.shape[1]
    out = llm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
              logits_to_keep=width + 1)
    logits = out.logits[:, :-1].float() / temperature
    picked = logits.gather(-1, tokens[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return picked * response_mask.to(picked.dtype)


# ---- the trainer ---------------------------------------------------------------------------


def waveform_batch(audios: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(a) for a in audios], dtype=torch.long)
    batch = torch.zeros(len(audios), int(lengths.max()))
    for i, a in enumerate(audios):
        batch[i, : len(a)] = torch.from_numpy(np.asarray(a, dtype=np.float32))
    return batch, lengths


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


@dataclass
class EncodedBatch:
    audio_embeds: torch.Tensor
    audio_lengths: torch.Tensor
    prompts: list[Prompt]


def _audio_trainable(model: FunASRModel) -> bool:
    return any(p.requires_grad for part in ("encoder", "adaptor")
               for p in getattr(model, part).parameters())


def encode_batch(model: FunASRModel, utterances: Sequence[RLUtterance], grad: bool = False
                 ) -> EncodedBatch:
    waveforms, lengths = waveform_batch([u.audio for u in utterances])
    device = next(model.parameters()).device
    with torch.set_grad_enabled(grad):
        enc = model.encode_audio(waveforms.to(device), lengths.to(device))
    prompts = [Prompt.from_sample(u.prompt) for u in utterances]
    return EncodedBatch(enc.audio_embeds, enc.audio_lengths, prompts)


def prompt_batch(model: FunASRModel, encoded: EncodedBatch, rows: Sequence[int] | None = None,
                 repeat: int = 1) -> PromptBatch:
    rows = list(range(len(encoded.prompts))) if rows is None else list(rows)
    inputs = model.build_llm_inputs(encoded.audio_embeds[rows], encoded.audio_lengths[rows],
                                    [encoded.prompts[r] for r in rows], padding_side="left")
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


class GRPOTrainer:
    """GRPO on a `FunASRModel` policy with a frozen reference copy and a rollout engine."""

    def __init__(self, model: FunASRModel, config: GRPOConfig, out_dir: str | Path,
                 rollout: RolloutEngine | None = None, reference: FunASRModel | None = None,
                 extractor: KeywordExtractor | None = None,
                 log_sink: Callable[[dict], None] | None = None):
        self.model = model
        self.config = config
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        names = set_trainable(model, config.trainable)
        if config.freeze_llm_embeddings:
            model.llm.get_input_embeddings().weight.requires_grad_(False)
            names = [n for n, p in model.named_parameters() if p.requires_grad]
        if not names:
            raise FunfactoryError(f"nothing to train: parts {config.trainable} have no parameters")
        self.reference = reference or copy.deepcopy(model)
        self.reference.eval().requires_grad_(False)
        self.rollout = rollout or TransformersRollout(model.llm, model.tokenizer)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.learning_rate,
                                           weight_decay=config.weight_decay)
        self.rewards = RewardFunction(config.reward, extractor)
        self.step = 0
        self.log_path = self.out_dir / "grpo_log.jsonl"
        self.log_sink = log_sink

    # -- one step --

    def sampling(self, step: int) -> SamplingConfig:
        c = self.config
        return SamplingConfig(n=c.group_size, max_new_tokens=c.max_new_tokens,
                              temperature=c.temperature, top_p=c.top_p, top_k=c.top_k,
                              seed=c.seed * 1_000_003 + step)

    def train_step(self, utterances: Sequence[RLUtterance]) -> dict:
        c, g = self.config, self.config.group_size
        timer = StepTimer()
        self.model.train()
        with timer.phase("encode"), torch.no_grad():
            encoded = encode_batch(self.model, utterances)
            prompts = prompt_batch(self.model, encoded)
        with timer.phase("rollout"):
            rollouts = self.rollout.generate(prompts, self.sampling(self.step))
        with timer.phase("reward"):
            breakdowns = score_rollouts(self.rewards, utterances, rollouts)
            rewards = torch.tensor([b.total for b in breakdowns])
            advantages = group_advantages(rewards, g, c.advantage_eps).to(rollouts.logprobs.device)
        with timer.phase("update"):
            update = self._update(utterances, encoded, rollouts, advantages)
        with timer.phase("weight_sync"):
            self.rollout.sync_weights(merged_llm_weights(self.model.llm))
        self.step += 1
        audio_seconds = sum(u.duration for u in utterances)
        total = sum(timer.seconds.values())
        record = {"step": self.step, **reward_summary(breakdowns),
                  "reward_std": float(rewards.std(unbiased=False)), **update,
                  "response_length": float(rollouts.lengths.float().mean()),
                  "utterances": len(utterances), "group_size": g,
                  "audio_seconds": audio_seconds,
                  **{f"time_{k}": v for k, v in timer.seconds.items()},
                  "time_step": total, "rtf": total / max(audio_seconds, 1e-9),
                  "subsets": _count([u.subset for u in utterances if u.subset])}
        self._log(record)
        return record

    def _update(self, utterances, encoded: EncodedBatch, rollouts: Rollouts,
                advantages: torch.Tensor) -> dict:
        c, g = self.config, self.config.group_size
        b = len(utterances)
        audio_grad = _audio_trainable(self.model)
        with torch.no_grad():
            ref_encoded = encode_batch(self.reference, utterances) if audio_grad else encoded
            ref_logprobs = response_logprobs(self.reference.llm,
                                             prompt_batch(self.reference, ref_encoded, repeat=g),
                                             rollouts.tokens, rollouts.mask, c.temperature)
        chunks = [list(r) for r in np.array_split(np.arange(b), max(1, min(c.mini_batches, b)))]
        stats, grad_norms = [], []
        for rows in chunks:
            policy_encoded = encode_batch(self.model, [utterances[r] for r in rows], grad=True) \
                if audio_grad else _select(encoded, rows)
            seq = [r * g + i for r in rows for i in range(g)]
            logprobs = response_logprobs(self.model.llm, prompt_batch(self.model, policy_encoded, repeat=g),
                                         rollouts.tokens[seq], rollouts.mask[seq], c.temperature)
            loss, st = grpo_loss(logprobs, rollouts.logprobs[seq], ref_logprobs[seq],
                                 advantages[seq], rollouts.mask[seq], c.clip_epsilon, c.kl_beta)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            params = [p for p in self.model.parameters() if p.requires_grad]
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_(params, c.max_grad_norm)))
            self.optimizer.step()
            stats.append(st)
        k = len(stats)
        return {"loss": sum(s.loss for s in stats) / k, "kl": sum(s.kl for s in stats) / k,
                "clip_fraction": sum(s.clip_fraction for s in stats) / k,
                "ratio_mean": sum(s.ratio_mean for s in stats) / k,
                "grad_norm": sum(grad_norms) / k, "learning_rate": c.learning_rate}

    def _log(self, record: dict) -> None:
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        if self.log_sink is not None:
            self.log_sink(record)

    # -- runs, checkpoints, resume --

    def fit(self, utterances: Sequence[RLUtterance], steps: int | None = None) -> list[dict]:
        steps = self.config.steps if steps is None else steps
        records = []
        batches = step_batches(utterances, self.config.utterances_per_step, self.step)
        while self.step < steps:
            records.append(self.train_step(next(batches)))
            if self.config.save_every and self.step % self.config.save_every == 0:
                self.save_checkpoint()
        return records

    def checkpoint_dir(self, step: int) -> Path:
        return self.out_dir / "checkpoints" / f"step-{step:06d}"

    def save_checkpoint(self) -> Path:
        from funfactory.model.checkpoint import save_model

        final = self.checkpoint_dir(self.step)
        tmp = final.with_name(f".{final.name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_model(self.model, tmp / "model")
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        state = {"step": self.step, "config": _jsonable(asdict(self.config)),
                 "torch_rng": torch.get_rng_state().tolist()}
        (tmp / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return final

    def load_checkpoint(self, folder: str | Path) -> None:
        """Load the optimizer and step of a checkpoint whose model this trainer already holds."""
        folder = Path(folder)
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        self.optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
        self.step = int(state["step"])
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
        self._truncate_log(self.step)

    def _truncate_log(self, step: int) -> None:
        if not self.log_path.exists():
            return
        kept = [line for line in self.log_path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line)["step"] <= step]
        self.log_path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    folder = Path(out_dir) / "checkpoints"
    found = sorted(p for p in folder.glob("step-*") if (p / "trainer_state.json").is_file()) \
        if folder.is_dir() else []
    return found[-1] if found else None


def resume_or_start(init_model: str | Path, out_dir: str | Path, config: GRPOConfig,
                    rollout_factory: Callable[[FunASRModel], RolloutEngine] | None = None,
                    extractor: KeywordExtractor | None = None, device: str = "cpu") -> GRPOTrainer:
    """A trainer for `out_dir`: from its latest checkpoint if there is one, else from
    `init_model` (a saved model folder), which is also the frozen reference policy."""
    from funfactory.model.checkpoint import load_model

    checkpoint = latest_checkpoint(out_dir)
    model = load_model(checkpoint / "model" if checkpoint else init_model).to(device)
    reference = load_model(init_model).to(device) if checkpoint else None
    rollout = rollout_factory(model) if rollout_factory else None
    trainer = GRPOTrainer(model, config, out_dir, rollout=rollout, reference=reference,
                          extractor=extractor)
    if checkpoint:
        trainer.load_checkpoint(checkpoint)
    return trainer


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


def _select(encoded: EncodedBatch, rows: list[int]) -> EncodedBatch:
    return EncodedBatch(encoded.audio_embeds[rows], encoded.audio_lengths[rows],
                        [encoded.prompts[r] for r in rows])


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
