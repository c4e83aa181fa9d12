"""Mixed precision for training and decoding (section 4 trains in mixed precision).

`auto` means bf16 autocast where the hardware multiplies bf16 matrices natively: CUDA GPUs, and
CPUs with AMX tiles (Intel Sapphire Rapids and later), where a bf16 matmul runs several times
faster than fp32 (about 7 times for an LLM-sized one, measured on this project's 2-core CI-class
machine). Elsewhere `auto` stays fp32, since bf16 without native support is slower. Trained
weights stay fp32; autocast runs matmuls in bf16 and keeps losses and softmaxes in fp32. A frozen
LLM's weights can be stored in the autocast dtype instead (`store_frozen_llm_in`).
"""

from __future__ import annotations

import contextlib

import torch

from funfactory.errors import FunfactoryError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has AMX tiles (bf16 matmuls in hardware)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe()) if probe is not None else False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """None for fp32; with `auto`, bf16 on CUDA and on CPUs with AMX."""
    if precision == "auto":
        native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
        precision = "bf16" if native else "fp32"
    if precision not in PRECISIONS:
        raise FunfactoryError(f"precision {precision!r}: choose auto, fp32, bf16 or fp16")
    return PRECISIONS[precision]


def autocast(precision: str, device: torch.device):
    """The autocast context for `precision` on `device` (a no-op for fp32)."""
    dtype = autocast_dtype(precision, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def store_frozen_llm_in(model, dtype: torch.dtype) -> None:
    """Store the frozen floating-point weights of `model.llm` (a LoRA LLM's base, or an LLM the
    stage does not train) in `dtype`.

    Under autocast a frozen fp32 weight is cast to 16 bits again at every matmul of every step;
    stored in 16 bits the cast is gone and the weights take half the memory. Trained weights
    (LoRA, adaptor) stay fp32, and merging an adapter into a 16-bit base weight yields fp32
    (`funfactory.model.lora.merged_llm_weights`). On a 2-core AMX CPU the demo's LoRA steps did
    not gain reliably from it (docs/trainer.md), so the demo's LLM run trains in fp32."""
    for param in model.llm.parameters():
        if not param.requires_grad and param.is_floating_point():
            param.data = param.data.to(dtype)


def cast_once_per_autocast(module: torch.nn.Module) -> torch.nn.Module:
    """`module` with every floating-point parameter requiring grad, for a copy that only decodes,
    without autograd (under `torch.no_grad` nothing accumulates in them).

    Autocast keeps its 16-bit cast of a weight for the rest of the autocast block only when the
    weight is a leaf that requires grad; a frozen copy's weights are cast again at every call,
    that is at every token step of decoding. Greedy validation of 48 utterances through the
    `cpu` size's merged LLM copy took 23-27 s that way and 13-16 s this way (2 CPU cores), with
    the same transcripts."""
    for param in module.parameters():
        if param.is_floating_point():
            param.requires_grad_(True)
    return module


FP32_CPU_ATTENTION = "sdpa_fp32_on_cpu"  # the attention implementation `attention_in_fp32_on_cpu` sets


def _sdpa_fp32_on_cpu(module, query, key, value, attention_mask, **kwargs):
    """transformers' SDPA attention, run in fp32 when autograd records it on a CPU in 16 bits."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if not (query.device.type == "cpu" and query.dtype in (torch.bfloat16, torch.float16)
            and torch.is_grad_enabled()):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if attention_mask is not None and attention_mask.is_floating_point():
        attention_mask = attention_mask.float()
    with torch.autocast("cpu", enabled=False):
        out, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(),
                                              attention_mask, **kwargs)
    return out.to(query.dtype), weights


def attention_in_fp32_on_cpu(llm) -> None:
    """Make `llm` (a transformers model, or a peft model around one) compute attention in fp32
    wherever it trains on a CPU under 16-bit autocast; elsewhere (CUDA, decoding) it stays
    transformers' SDPA.

    PyTorch's CPU flash attention runs its backward about 3.7 times slower in bf16 than in fp32
    (SmolLM2-135M LoRA steps on a 2-core AMX CPU: 244 against 66 ms a step), which cancelled what
    bf16 matmuls gained there. With attention in fp32, those steps ran 30 % faster than in fp32
    throughout, against 17 % with bf16 attention."""
    from transformers import AttentionInterface

    AttentionInterface.register(FP32_CPU_ATTENTION, _sdpa_fp32_on_cpu)
    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
    base.set_attn_implementation(FP32_CPU_ATTENTION)
