"""LLM decoder: a local causal LM, the prompt template, audio splicing and generation.

Fun-ASR (section 2) feeds the adaptor's audio embeddings to a Qwen3 LLM between prompt text; the
contextual (4.3) and hotword (5.5) stages put context pieces, hotword candidates and the CTC
hypothesis into that prompt. Here the prompt is Qwen's chat format:

    <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n{instruction}
    [Context: ...][Previous text: ...][Hotwords: a, b][CTC hypothesis: ...]
    <audio><|im_end|>\\n<|im_start|>assistant\\n{transcript}<|im_end|>

(no system turn where the model's `system_prompt` is empty).

The `<audio>` placeholder is never tokenised: the text on each side is tokenised separately and the
audio embeddings are spliced between them in `inputs_embeds`. Labels are -100 everywhere except the
transcript and its closing `<|im_end|>`, so only the transcript is trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from funfactory.errors import FunfactoryError, MissingAssetError
from funfactory.model.hf_lock import HF_LOCK

IGNORE_INDEX = -100
# Training rows are padded to a multiple of this many positions. A CPU's oneDNN bf16 kernels slow
# down as a run meets more distinct shapes: SmolLM2 LoRA steps on rows of every length from 70
# to 140 went from 2.4 to 3.2 ms a token over 90 steps, on rows of multiples of 8 they stayed
# near 2.3-2.6 (fp32: 3.0 throughout), and the demo's LLM run took 194 s against 231 s.
TRAIN_LENGTH_MULTIPLE = 8
AUDIO_PLACEHOLDER = "<audio>"
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")


PACKAGED_LLMS = ("smollm2-135m-instruct", "gemma3-270m")


def resolve_llm_path(path: str | Path) -> Path:
    """A local causal-LM folder, or a packaged LLM's name (converted once into the cache)."""
    if str(path) in PACKAGED_LLMS:
        from funfactory.synth.llm.transformers_backend import packaged_model_dir

        return packaged_model_dir(str(path))
    return Path(path)


def load_llm(path: str | Path, dtype: torch.dtype = torch.float32):
    """(model, tokenizer) from a local Hugging Face folder or a packaged LLM's name (see
    `resolve_llm_path`); never touches the network."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_llm_path(path)
    if not (folder / "config.json").is_file():
        raise MissingAssetError(
            f"LLM folder {folder} has no config.json: give a local causal-LM checkpoint folder "
            "(build a tiny one with `python -m funfactory.model.tiny_llm DIR`)")
    with HF_LOCK:
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return model, tokenizer


@dataclass
class Prompt:
    """What the LLM is told besides the audio; the shard sample's `prompt` field maps onto it."""
    context: list[str] = field(default_factory=list)
    hotwords: list[str] = field(default_factory=list)
    previous_text: str | None = None
    ctc_hypothesis: str | None = None

    @classmethod
    def from_sample(cls, prompt: dict | None, ctc_hypothesis: str | None = None) -> "Prompt":
        prompt = prompt or {}
        return cls(context=list(prompt.get("context") or []),
                   hotwords=list(prompt.get("hotwords") or []),
                   previous_text=prompt.get("previous_text"), ctc_hypothesis=ctc_hypothesis)


@dataclass
class PromptTemplate:
    system: str = "You are a speech recognition model."
    instruction: str = "Transcribe the audio."

    def user_text(self, prompt: Prompt) -> str:
        parts = [self.instruction]
        if prompt.context:
            parts.append("Context:\n" + "\n".join(f"- {c}" for c in prompt.context))
        if prompt.previous_text:
            parts.append(f"Previous text: {prompt.previous_text}")
        if prompt.hotwords:
            parts.append("Hotwords: " + ", ".join(prompt.hotwords))
        if prompt.ctc_hypothesis is not None:
            parts.append(f"CTC hypothesis: {prompt.ctc_hypothesis}")
        return "\n".join(parts) + "\n"

    def split(self, prompt: Prompt) -> tuple[str, str]:
        """The text before and after the audio embeddings."""
        system = f"<|im_start|>system\n{self.system}<|im_end|>\n" if self.system else ""
        before = f"{system}<|im_start|>user\n{self.user_text(prompt)}"
        after = "<|im_end|>\n<|im_start|>assistant\n"
        return before, after


@dataclass
class LLMInputs:
    inputs_embeds: torch.Tensor  # (B, L, H)
    attention_mask: torch.Tensor  # (B, L)
    labels: torch.Tensor | None  # (B, L) with IGNORE_INDEX outside the transcript
    audio_spans: list[tuple[int, int]]  # where each utterance's audio embeddings sit


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def stop_token_ids(tokenizer) -> list[int]:
    ids = [tokenizer.convert_tokens_to_ids(t) for t in STOP_TOKENS]
    ids = [i for i in ids if isinstance(i, int) and i >= 0 and i != tokenizer.unk_token_id]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise FunfactoryError("the LLM tokenizer has no <|im_end|>, <|endoftext|> or eos token to stop on")
    return ids


def build_llm_inputs(llm, tokenizer, template: PromptTemplate, audio_embeds: torch.Tensor,
                     audio_lengths: torch.Tensor, prompts: list[Prompt],
                     targets: list[str] | None = None, padding_side: str = "right") -> LLMInputs:
    """Splice each utterance's audio embeddings into its prompt; add the target if given.

    Right padding for training; left padding for batched generation (`generate` continues
    from the last position of every row). With targets the rows are padded to a multiple of
    TRAIN_LENGTH_MULTIPLE positions.
    """
    if len(prompts) != audio_embeds.shape[0]:
        raise FunfactoryError(f"{len(prompts)} prompts for {audio_embeds.shape[0]} utterances")
    embed = llm.get_input_embeddings()
    stop = stop_token_ids(tokenizer)[0]
    rows, labels_rows, spans = [], [], []
    for b, prompt in enumerate(prompts):
        before, after = template.split(prompt)
        before_ids, after_ids = _ids(tokenizer, before), _ids(tokenizer, after)
        target_ids = (_ids(tokenizer, targets[b]) + [stop]) if targets is not None else []
        audio = audio_embeds[b, : int(audio_lengths[b])]
        text_before = embed(torch.tensor(before_ids, device=audio.device))
        text_after = embed(torch.tensor(after_ids + target_ids, device=audio.device, dtype=torch.long))
        rows.append(torch.cat([text_before, audio.to(text_before.dtype), text_after]))
        spans.append((len(before_ids), len(before_ids) + audio.shape[0]))
        prefix = len(before_ids) + audio.shape[0] + len(after_ids)
        labels_rows.append([IGNORE_INDEX] * prefix + target_ids)
    width = max(r.shape[0] for r in rows)
    if targets is not None:
        width = -(-width // TRAIN_LENGTH_MULTIPLE) * TRAIN_LENGTH_MULTIPLE
    hidden = rows[0].shape[1]
    device, dtype = rows[0].device, rows[0].dtype
    inputs = torch.zeros(len(rows), width, hidden, device=device, dtype=dtype)
    mask = torch.zeros(len(rows), width, dtype=torch.long, device=device)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long, device=device)
    for b, row in enumerate(rows):
        n = row.shape[0]
        start = width - n if padding_side == "left" else 0
        inputs[b, start : start + n] = row
        mask[b, start : start + n] = 1
        labels[b, start : start + n] = torch.tensor(labels_rows[b], device=device)
        spans[b] = (spans[b][0] + start, spans[b][1] + start)
    return LLMInputs(inputs, mask, labels if targets is not None else None, spans)


def _prefill(llm, embeds: torch.Tensor, mask: torch.Tensor):
    """The KV cache of a left-padded prompt, with the positions `generate` gives it."""
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)
    out = llm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True)
    return out.cache


class _RowBudget:
    """Stops each row of a batch at its own number of new tokens (HF stopping criterion)."""

    def __init__(self, limits: torch.Tensor):
        self.limits = limits

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        # with `inputs_embeds` only, generate's `input_ids` hold the new tokens alone
        return input_ids.shape[1] >= self.limits.to(input_ids.device)


def generate(llm, tokenizer, inputs: LLMInputs, max_new_tokens: int | Sequence[int] = 128,
             do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
             seed: int | None = None, num_return_sequences: int = 1) -> list[str]:
    """Greedy or sampled continuation of left-padded `inputs`, stopping at <|im_end|> or after
    `max_new_tokens` (one number, or one per input); with `num_return_sequences` samples, those
    of each input are consecutive, and the prompt is run through the LLM once for all of them (its
    keys and values copied per sample: the prompt, mostly audio tokens, is most of the work). A
    `seed` fixes the samples without touching the caller's random state. Sampled tokens are drawn
    by `model/sampling.py` (one uniform number per row), which greedy search then emits."""
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

    from funfactory.model.sampling import SampledToken

    rows = inputs.inputs_embeds.shape[0]
    limits = torch.as_tensor(max_new_tokens, dtype=torch.long).expand(rows)
    if int(limits.min()) < 1:
        raise FunfactoryError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    stops = stop_token_ids(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[-1]
    config = GenerationConfig(max_new_tokens=int(limits.max()), do_sample=False,
                              eos_token_id=stops, pad_token_id=pad)
    if inputs.attention_mask[:, -1].min() == 0:
        raise FunfactoryError("generation needs left-padded inputs: build_llm_inputs(padding_side='left')")
    embeds, mask, cache = inputs.inputs_embeds, inputs.attention_mask, None
    processors = LogitsProcessorList()
    if do_sample:
        generator = None if seed is None else \
            torch.Generator(device=embeds.device).manual_seed(seed)
        processors.append(SampledToken(temperature, top_k, top_p, generator))
    with torch.no_grad():
        if num_return_sequences > 1:
            cache = _prefill(llm, embeds[:, :-1], mask[:, :-1])
            cache.batch_repeat_interleave(num_return_sequences)
            embeds = embeds.repeat_interleave(num_return_sequences, dim=0)
            mask = mask.repeat_interleave(num_return_sequences, dim=0)
            limits = limits.repeat_interleave(num_return_sequences)
        out = llm.generate(inputs_embeds=embeds, attention_mask=mask, cache=cache,
                           generation_config=config, logits_processor=processors,
                           stopping_criteria=StoppingCriteriaList([_RowBudget(limits)]))
    texts = []
    for row in out.tolist():
        ids = []
        for token in row:
            if token in stops:
                break
            ids.append(token)
        texts.append(tokenizer.decode(ids, skip_special_tokens=True))
    return texts
