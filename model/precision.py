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
