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


def test_a_bf16_lora_run_stores_the_frozen_llm_in_bf16_and_saves_fp32_merged_weights(
        tmp_path, speech_clips):
    """Under bf16 autocast the trainer keeps the frozen LLM base in bf16 (autocast would recast
    it at every step); the adapters train in fp32, and the saved LLM holds the merged weights in
    fp32 (the adapters' updates are finer than bf16 could hold)."""
    from safetensors.torch import load_file

    from funfactory.model.precision import FP32_CPU_ATTENTION
    from funfactory.model.tiny_llm import cached_tiny_llm
    from funfactory.training.loader import StreamingLoader
    from funfactory.training.runner import build_task
    from funfactory.training.trainer import Trainer, read_metrics
    from tests.conftest_training import sft_config, write_speech_shards

    write_speech_shards(tmp_path / "train", speech_clips, 4, per_shard=4)
    config = sft_config(str(tmp_path / "train"), tmp_path / "run", cached_tiny_llm(), "llm_lora",
                        max_steps=2, precision="bf16", save_every=2)
    task = build_task("sft", config)
    trainer = Trainer(config, task, StreamingLoader(config.data, 0, 1))
    assert task.model.llm.get_base_model().config._attn_implementation == FP32_CPU_ATTENTION
    llm = dict(task.model.llm.named_parameters())
    assert {p.dtype for p in llm.values() if p.requires_grad} == {torch.float32}
    assert {p.dtype for p in llm.values() if not p.requires_grad} == {torch.bfloat16}
    base = next(p for n, p in llm.items()
                if n.endswith("layers.0.self_attn.q_proj.base_layer.weight")).detach().float()
    trainer.fit()
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in read_metrics(tmp_path / "run")
               if "loss" in r)
    saved = load_file(str(next((tmp_path / "run" / "final" / "llm").glob("*.safetensors"))))
    merged = saved["model.layers.0.self_attn.q_proj.weight"]
    assert merged.dtype == torch.float32
    assert not torch.equal(merged, base)  # the adapter moved it
    assert not torch.equal(merged, merged.to(torch.bfloat16).float())  # finer than bf16


def test_attention_trains_in_fp32_on_a_cpu_and_decodes_as_sdpa():
    """Under bf16 autocast with autograd on a CPU, attention equals SDPA on the fp32 inputs
    (bf16 SDPA differs), gradients included; without autograd it is SDPA itself."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from funfactory.model.precision import _sdpa_fp32_on_cpu

    module = torch.nn.Module()
    module.is_causal, module.num_key_value_groups = True, 1
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 17, 16, generator=gen).bfloat16().requires_grad_()
               for _ in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, _ = _sdpa_fp32_on_cpu(module, q, k, v, None)
        plain, _ = sdpa_attention_forward(module, q, k, v, None)
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    reference, _ = sdpa_attention_forward(module, q32, k32, v32, None)
    assert ours.dtype == torch.bfloat16
    assert torch.equal(ours, reference.to(torch.bfloat16))
    assert not torch.equal(plain, ours)
    ours.float().sum().backward()
    reference.sum().backward()
    for mine, theirs in ((q, q32), (k, k32), (v, v32)):
        assert torch.equal(mine.grad, theirs.grad.to(torch.bfloat16))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(_sdpa_fp32_on_cpu(module, q, k, v, None)[0],
                           sdpa_attention_forward(module, q, k, v, None)[0])
