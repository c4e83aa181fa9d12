"""Best-RQ pre-training, the trainer's checkpoints, and a 2-process DDP run (gloo, CPU)."""

from __future__ import annotations

import dataclasses
import socket

import pytest
import torch
from safetensors.torch import load_file

from funfactory.training.bestrq import BestRQModel, RandomProjectionQuantizer
from funfactory.training.loader import StreamingLoader
from funfactory.training.runner import build_task, run
from funfactory.training.trainer import Trainer, latest_checkpoint, read_metrics
from tests.conftest_training import bestrq_config, spawned_rank, write_speech_shards


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory, speech_clips):
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("bestrq") / "shards"
    write_speech_shards(folder, speech_clips, 14, per_shard=7, dataset="unlab", task="unlabelled")
    return str(folder)


def test_quantizer_is_frozen_and_deterministic():
    q = RandomProjectionQuantizer(560, 64, 8, num_codebooks=2, seed=5)
    assert list(q.parameters()) == []
    assert {name for name, _ in q.named_buffers()} == {"projection", "codebooks"}
    feats = torch.randn(2, 30, 560)
    codes = q(feats)
    assert codes.shape == (2, 30, 2) and int(codes.max()) < 64
    assert torch.equal(codes, RandomProjectionQuantizer(560, 64, 8, 2, seed=5)(feats))
    assert len(codes.unique()) > 8, "random codes spread over the codebook"


def _eval_loss(model: BestRQModel, batch: dict) -> float:
    model.eval()
    with torch.no_grad():
        return float(model(batch["waveforms"], batch["lengths"], batch["keys"], seed=0,
                           step=10_000)["loss"])


def test_bestrq_loss_falls_on_speech_and_quantizer_stays_frozen(unlabelled, tmp_path):
    config = bestrq_config(unlabelled, tmp_path / "run", max_steps=24)
    config.data.batch_size = 7
    task = build_task("pretrain-bestrq", config)
    quantizer = {k: v.clone() for k, v in task.model.quantizer.state_dict().items()}
    loader = StreamingLoader(config.data)
    probe = next(iter(StreamingLoader(config.data)))
    before = _eval_loss(task.model, probe)
    trainer = Trainer(config, task, loader)
    assert all(p is not task.model.quantizer.projection for g in trainer.optimizer.param_groups
               for p in g["params"])
    trainer.fit()
    after = _eval_loss(task.model, probe)
    for name, tensor in task.model.quantizer.state_dict().items():
        assert torch.equal(tensor, quantizer[name]), f"quantizer {name} changed"
    assert after < before - 0.3, (before, after)
    exported = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    assert torch.equal(exported["quantizer.codebooks"], quantizer["codebooks"])
    assert any(k.startswith("encoder.stack.layers.0.") for k in exported)


def test_resumed_run_equals_an_uninterrupted_one(unlabelled, tmp_path):
    straight = bestrq_config(unlabelled, tmp_path / "straight", max_steps=4)
    run("pretrain-bestrq", straight)
    split = bestrq_config(unlabelled, tmp_path / "split", max_steps=2, save_every=2)
    run("pretrain-bestrq", split)
    assert latest_checkpoint(tmp_path / "split").name == "step-00000002"
    run("pretrain-bestrq", dataclasses.replace(split, run=dataclasses.replace(split.run,
                                                                             max_steps=4)))
    a = load_file(str(tmp_path / "straight" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    losses = [m["loss"] for m in read_metrics(tmp_path / "straight") if "loss" in m]
    resumed = [m["loss"] for m in read_metrics(tmp_path / "split") if "loss" in m]
    assert losses == resumed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_match_one_process_with_accumulation(speech_clips, tmp_path):
    """2 ranks x 1 sample per step == 1 process x 2 accumulated samples, on the same data.

    One shard for two ranks: the loader splits it by sample index (even samples to rank 0, odd to
    rank 1), so rank r's k-th sample is the single process's (2k + r)-th."""
    shards = tmp_path / "one-shard"
    write_speech_shards(shards, speech_clips, 6, per_shard=6, dataset="ddp", task="unlabelled")
    single = bestrq_config(str(shards), tmp_path / "single", max_steps=3, grad_accum=2)
    single.data.batch_size = 1
    run("pretrain-bestrq", single)
    ddp = bestrq_config(str(shards), tmp_path / "ddp", max_steps=3, grad_accum=1)
    ddp.data.batch_size = 1
    # fork: the ranks start without re-importing torch (tens of seconds on a busy machine)
    torch.multiprocessing.start_processes(spawned_rank, args=(2, _free_port(), "pretrain-bestrq",
                                                              ddp), nprocs=2, start_method="fork")
    a = load_file(str(tmp_path / "single" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "ddp" / "final" / "model.safetensors"))
    start = build_task("pretrain-bestrq", single).model.state_dict()
    moved = 0.0
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5, rtol=1e-4), name
        moved = max(moved, float((a[name] - start[name]).abs().max()))
    assert moved > 1e-3, "training moved the weights, so the comparison means something"


def test_example_configs_load():
    from pathlib import Path

    from funfactory.config import load_config
    from funfactory.training.config import TrainConfig
    from funfactory.training.stages import get_stage

    configs = sorted((Path(__file__).parent.parent / "training" / "configs").glob("*.yaml"))
    assert len(configs) >= 8
    for path in configs:
        config = load_config(TrainConfig, path)
        assert config.data.streams, path
        get_stage(config.model.stage)


def test_cli_runs_a_stage_from_yaml_with_overrides(unlabelled, tmp_path, capsys):
    from funfactory.cli import main

    yaml_file = tmp_path / "bestrq.yaml"
    yaml_file.write_text(
        "data:\n  streams:\n    - {name: speech, shards: ['%s']}\n  batch_size: 4\n"
        "bestrq: {codebook_size: 32, codebook_dim: 8}\n"
        "run: {device: cpu, tensorboard: true, save_every: 2, val_every: 0, log_every: 1}\n"
        % unlabelled)
    out = tmp_path / "cli-run"
    assert main(["train", "pretrain-bestrq", "--config", str(yaml_file), "run.max_steps=2",
                 f"run.out_dir={out}", "run.threads=1"]) == 0
    assert '"loss"' in capsys.readouterr().out
    assert (out / "checkpoints" / "step-00000002" / "loader-rank0.json").is_file()
    assert (out / "final" / "model.safetensors").is_file()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert [m["step"] for m in read_metrics(out) if "loss" in m] == [1, 2]


@pytest.mark.slow
def test_fsdp_two_processes_with_a_resume_match_one_process(speech_clips, tmp_path):
    """FSDP2 (fully_shard, gloo on CPU) with a checkpoint and resume at step 2 == 1 process."""
    shards = tmp_path / "one-shard"
    write_speech_shards(shards, speech_clips, 8, per_shard=8, dataset="fsdp", task="unlabelled")
    single = bestrq_config(str(shards), tmp_path / "single", max_steps=4, grad_accum=2)
    single.data.batch_size = 1
    run("pretrain-bestrq", single)
    fsdp = bestrq_config(str(shards), tmp_path / "fsdp", max_steps=2, save_every=2,
                         distributed="fsdp")
    fsdp.data.batch_size = 1
    for steps in (2, 4):
        fsdp.run.max_steps = steps
        torch.multiprocessing.start_processes(spawned_rank, args=(2, _free_port(),
                                                                  "pretrain-bestrq", fsdp),
                                              nprocs=2, start_method="fork")
    assert (tmp_path / "fsdp" / "checkpoints" / "step-00000002" / "optimizer").is_dir()
    a = load_file(str(tmp_path / "single" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "fsdp" / "final" / "model.safetensors"))
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5, rtol=1e-4), name


def test_mixed_precision_and_accumulation_path_runs(unlabelled, tmp_path):
    """bf16 autocast (what GPUs run) with gradient accumulation, on the CPU: finite losses."""
    config = bestrq_config(unlabelled, tmp_path / "bf16", max_steps=2, grad_accum=2,
                           precision="bf16")
    results = run("pretrain-bestrq", config)
    assert torch.isfinite(torch.tensor(results["loss"])) and results["grad_norm"] > 0
    assert [m["step"] for m in read_metrics(tmp_path / "bf16") if "loss" in m] == [1, 2]
