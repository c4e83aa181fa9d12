"""Mixed precision for training and decoding (section 4 trains in mixed precision).

`auto` means bf16 autocast where the hardware multiplies bf16 matrices natively: CUDA GPUs, and
CPUs with AMX tiles (Intel Sapphire Rapids and later), where a bf16 matmul runs several times
faster than fp32 (about 7 times for an LLM-sized one, measured on this project's 2-core CI-class
machine). Elsewhere `auto` stays fp32, since bf16 without native support is slower. Weights stay
fp32 either way; autocast runs matmuls in bf16 and keeps losses and softmaxes in fp32.
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
