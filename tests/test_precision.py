"""Mixed precision: `auto` is bf16 on CUDA and on CPUs with AMX tiles, fp32 elsewhere."""

import pytest
import torch


def test_auto_precision_is_bf16_exactly_where_the_hardware_has_it():
    from funfactory.model.precision import autocast, autocast_dtype, cpu_has_native_bf16

    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) == (torch.bfloat16 if cpu_has_native_bf16() else None)
    assert autocast_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert autocast_dtype("fp32", cpu) is None
    with pytest.raises(Exception, match="choose auto, fp32, bf16 or fp16"):
        autocast_dtype("int8", cpu)
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with autocast("bf16", cpu):
        assert (a @ b).dtype == torch.bfloat16
    with autocast("fp32", cpu):
        assert (a @ b).dtype == torch.float32
