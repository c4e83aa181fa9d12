"""Helpers for the model tests: one tiny Qwen3 folder per test session, tiny models around it."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import torch

from funfactory.model.asr import FunASRModel
from funfactory.model.configs import model_config
from funfactory.model.ctc import CTCVocab
from funfactory.model.llm import load_llm
from funfactory.model.tiny_llm import cached_tiny_llm


def tiny_llm_dir() -> Path:
    """A random-init tiny Qwen3 with the real Qwen tokenizer (built once per machine, ~15 s)."""
    return cached_tiny_llm()


@functools.lru_cache(maxsize=1)
def _tiny_llm():
    return load_llm(tiny_llm_dir())


def tiny_model(texts=("hello world", "我们明天开会"), chunk_frames: int = 0, downsample: int = 1,
               seed: int = 0) -> FunASRModel:
    """A fresh tiny model (its own copy of the LLM weights) around the session's tiny LLM."""
    torch.set_num_threads(1)
    config = model_config("tiny", llm_path=str(tiny_llm_dir()))
    config.encoder.chunk_frames = chunk_frames
    config.adaptor.downsample = downsample
    llm, tokenizer = _tiny_llm()
    vocab = CTCVocab.build(tokenizer, list(texts))
    torch.manual_seed(seed)
    return FunASRModel(config, copy.deepcopy(llm), tokenizer, vocab).eval()


def weight_casts_under_bf16(llm: torch.nn.Module, run) -> int:
    """How many times `run()`, under bf16 autocast, casts a tensor shaped like one of `llm`'s
    linear weights: once per weight when autocast keeps its casts for the block, once per weight
    and call (token step) when it cannot."""
    shapes = [list(m.weight.shape) for m in llm.modules() if isinstance(m, torch.nn.Linear)]
    with torch.autocast("cpu", dtype=torch.bfloat16), \
            torch.profiler.profile(record_shapes=True) as prof:
        run()
    return sum(1 for e in prof.events()
               if e.name == "aten::_to_copy" and e.input_shapes and e.input_shapes[0] in shapes)
