"""A readable training loop shared by every stage (Fun-ASR sections 4.1-4.3), and its parts.

The loop (`Trainer.fit`) reads top to bottom: take `grad_accum` batches from the streaming
loader, run the task's loss under autocast, step the optimiser and schedule, then log, validate
and checkpoint at their intervals. A *task* supplies what differs between stages:

    task.model                      the torch module to train (parameters to freeze already frozen)
    task.loss(model, batch)         -> {"loss": scalar tensor, other scalars (tensors or numbers)}
    task.validate(model)            -> {"val_cer": ..., ...} (optional; rank 0)
    task.export(model, folder)      writes the stage's final model (optional)

Tasks: Best-RQ and AED pre-training, the SFT stages and contextual SFT (`training/sft.py`), and
GRPO (`training/grpo.py`, whose loss samples rollouts and scores them). The pieces are plain
functions: `setup_distributed`, `wrap_model`, `build_optimizer`, `build_scheduler`,
`save_checkpoint` / `load_checkpoint` / `latest_checkpoint`, `MetricsLogger`.

Checkpoint folder (`{out_dir}/checkpoints/step-{step:08d}/`, written under a temporary name and
renamed when complete):

    model.safetensors     the trainable parameters by name (frozen ones come from the stage's init)
    optimizer.pt          optimiser state (torch.save; loaded with weights_only=True), or
    optimizer/            under FSDP, the sharded optimiser state (torch.distributed.checkpoint)
    trainer.pt            step, scheduler and grad-scaler state
    rng-rank{r}.pt        torch / CUDA / Python / NumPy RNG states of rank r
    loader-rank{r}.json   the streaming loader's state of rank r (exact mid-epoch resume)
    meta.json             step, time, world size, the run's config
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from funfactory.errors import FunfactoryError
from funfactory.model.precision import (attention_in_fp32_on_cpu, autocast_dtype,
                                         store_frozen_llm_in)
from funfactory.training.config import OptimConfig, RunConfig, TrainConfig

log = logging.getLogger(__name__)


# -- distributed ---------------------------------------------------------------------------------
@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise FunfactoryError("run.device=cuda but no CUDA device is visible: use run.device=cpu")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device(name)


def setup_distributed(run: RunConfig) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (nccl on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(run.device, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank, device)


def barrier(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.barrier()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def wrap_model(model: torch.nn.Module, info: DistInfo, mode: str = "ddp") -> torch.nn.Module:
    """DDP (or FSDP2 `fully_shard` per transformer layer, for large models) across the world."""
    model.to(info.device)
    if not info.distributed:
        return model
    if mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for module in model.modules():
            if type(module).__name__.endswith(("DecoderLayer", "TransformerLayer")):
                fully_shard(module)
        return fully_shard(model)
    if mode != "ddp":
        raise FunfactoryError(f"run.distributed={mode!r}: choose ddp or fsdp")
    ids = [info.device.index] if info.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def gather_for_export(model: torch.nn.Module) -> None:
    """Under FSDP, replace every sharded parameter by its full tensor (a collective: all ranks
    call it) so the model can be written with ordinary state dicts. The end of a run only: the
    model no longer trains sharded afterwards. A no-op for other models."""
    if not is_sharded(model):
        return
    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            if hasattr(param, "full_tensor"):
                module._parameters[name] = torch.nn.Parameter(
                    param.full_tensor().detach(), requires_grad=param.requires_grad)


# -- optimiser and schedule ---------------------------------------------------------------------
def build_optimizer(model: torch.nn.Module, optim: OptimConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; no weight decay on norms and biases (1-D tensors)."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    if not decay and not no_decay:
        raise FunfactoryError("the model has no trainable parameters: check the stage's parts")
    groups = [{"params": decay, "weight_decay": optim.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=optim.lr,
                             betas=tuple(optim.betas))


def lr_factor(step: int, optim: OptimConfig, max_steps: int) -> float:
    """Linear warmup, then cosine or linear decay to `min_lr_ratio`, or constant."""
    if step < optim.warmup_steps:
        return (step + 1) / optim.warmup_steps
    if optim.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - optim.warmup_steps) / max(1, max_steps - optim.warmup_steps))
    if optim.schedule == "cosine":
        shape = 0.5 * (1 + math.cos(math.pi * progress))
    elif optim.schedule == "linear":
        shape = 1.0 - progress
    else:
        raise FunfactoryError(f"optim.schedule={optim.schedule!r}: choose cosine, linear or constant")
    return optim.min_lr_ratio + (1 - optim.min_lr_ratio) * shape


def build_scheduler(optimizer: torch.optim.Optimizer, optim: OptimConfig,
                    max_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer,
                                             lambda step: lr_factor(step, optim, max_steps))


# -- RNG and checkpoints ------------------------------------------------------------------------
def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": _py_state(random.getstate()),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                       *np_state[2:]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _py_state(state: tuple) -> list:
    return [state[0], list(state[1]), state[2]]


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python"][0], tuple(state["python"][1]), state["python"][2]))
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np_state[1].numpy().astype(np.uint32), *np_state[2:]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def is_sharded(model: torch.nn.Module) -> bool:
    """True for an FSDP2 model (its parameters are DTensors)."""
    return any(hasattr(p, "full_tensor") for p in model.parameters())


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters by (unwrapped) name, full, on the CPU (a tied parameter once:
    `named_parameters` lists each Parameter object once).

    Under FSDP every rank must call this: gathering a sharded parameter is a collective."""
    state = {}
    for name, param in unwrap(model).named_parameters():
        if param.requires_grad:
            full = param.full_tensor() if hasattr(param, "full_tensor") else param
            state[name] = full.detach().cpu().contiguous()
    return state


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(unwrap(model).named_parameters())
    missing = [n for n in state if n not in params]
    if missing:
        raise FunfactoryError(
            f"checkpoint holds {len(missing)} parameter(s) the model lacks (first: {missing[0]}); "
            "resume with the same model size and stage")
    with torch.no_grad():
        for name, tensor in state.items():
            param = params[name]
            tensor = tensor.to(param.device, param.dtype)
            if hasattr(param, "full_tensor"):  # FSDP: keep this rank's shard of the full tensor
                from torch.distributed.tensor import distribute_tensor

                tensor = distribute_tensor(tensor, param.device_mesh, param.placements)
            param.copy_(tensor)


def checkpoint_dir(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"step-{step:08d}"


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    found = sorted((Path(out_dir) / "checkpoints").glob("step-[0-9]*"))
    found = [p for p in found if (p / "meta.json").is_file()]
    return found[-1] if found else None


def save_checkpoint(out_dir: str | Path, step: int, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None, scheduler=None, scaler=None,
                    loader_state: dict | None = None, info: DistInfo | None = None,
                    config: dict | None = None, keep: int = 0) -> Path:
    """Write a complete checkpoint (every rank calls this; rank 0 writes the shared files)."""
    info = info or DistInfo()
    final = checkpoint_dir(out_dir, step)
    partial = final.with_name("." + final.name + ".partial")
    if info.is_main:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    barrier(info)
    state = trainable_state(model)
    sharded = is_sharded(model)
    if sharded and optimizer is not None:  # each rank holds a shard: distributed checkpoint
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        dcp.save({"optimizer": get_optimizer_state_dict(model, optimizer)},
                 checkpoint_id=str(partial / "optimizer"))
    if info.is_main:
        save_file(state, str(partial / "model.safetensors"), metadata={"step": str(step)})
        if optimizer is not None and not sharded:
            torch.save(optimizer.state_dict(), partial / "optimizer.pt")
        torch.save({"step": step,
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "scaler": scaler.state_dict() if scaler is not None else None},
                   partial / "trainer.pt")
    torch.save(rng_state(), partial / f"rng-rank{info.rank}.pt")
    if loader_state is not None:
        (partial / f"loader-rank{info.rank}.json").write_text(json.dumps(loader_state),
                                                               encoding="utf-8")
    barrier(info)
    if info.is_main:
        (partial / "meta.json").write_text(json.dumps(
            {"step": step, "time": time.time(), "world_size": info.world_size,
             "config": config}, indent=2, default=str), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        if keep > 0:
            older = sorted(final.parent.glob("step-[0-9]*"))[:-keep]
            for old in older:
                shutil.rmtree(old, ignore_errors=True)
    barrier(info)
    return final


def load_checkpoint(folder: str | Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, scheduler=None, scaler=None,
                    info: DistInfo | None = None) -> dict:
    """Restore a checkpoint in place; returns {"step", "loader_state" (this rank's or None)}."""
    info = info or DistInfo()
    folder = Path(folder)
    if not (folder / "meta.json").is_file():
        raise FunfactoryError(f"{folder} is not a complete checkpoint (no meta.json)")
    load_trainable_state(model, load_file(str(folder / "model.safetensors")))
    if optimizer is not None and (folder / "optimizer").is_dir():
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (get_optimizer_state_dict,
                                                             set_optimizer_state_dict)

        state = {"optimizer": get_optimizer_state_dict(model, optimizer)}
        dcp.load(state, checkpoint_id=str(folder / "optimizer"))
        set_optimizer_state_dict(model, optimizer, state["optimizer"])
    elif optimizer is not None and (folder / "optimizer.pt").is_file():
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True,
                                             map_location="cpu"))
    trainer = torch.load(folder / "trainer.pt", weights_only=True)
    if scheduler is not None and trainer["scheduler"] is not None:
        scheduler.load_state_dict(trainer["scheduler"])
    if scaler is not None and trainer["scaler"] is not None:
        scaler.load_state_dict(trainer["scaler"])
    rng_file = folder / f"rng-rank{info.rank}.pt"
    if rng_file.is_file():
        set_rng_state(torch.load(rng_file, weights_only=True))
    loader_file = folder / f"loader-rank{info.rank}.json"
    loader_state = (json.loads(loader_file.read_text(encoding="utf-8"))
                    if loader_file.is_file() else None)
    return {"step": int(trainer["step"]), "loader_state": loader_state}


# -- metrics ------------------------------------------------------------------------------------
class MetricsLogger:
    """Scalars to `metrics.jsonl` (always) and TensorBoard (when importable); rank 0 only."""

    def __init__(self, out_dir: str | Path, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self.writer = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:
                    log.info("tensorboard is not importable; metrics go to %s only", self.path)
                else:
                    self.writer = SummaryWriter(str(Path(out_dir) / "tensorboard"))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "time": time.time(), **metrics}) + "\n")
        if self.writer is not None:
            for name, value in metrics.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(name, value, step)
            self.writer.flush()

    def forget_after(self, step: int) -> None:
        """Drop the rows of steps after `step` (a resumed run logs them again)."""
        if not self.enabled or not self.path.is_file():
            return
        rows = self.path.read_text(encoding="utf-8").splitlines()
        kept = [row for row in rows if row and json.loads(row)["step"] <= step]
        self.path.write_text("".join(row + "\n" for row in kept), encoding="utf-8")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(out_dir: str | Path) -> list[dict]:
    path = Path(out_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# -- the loop -----------------------------------------------------------------------------------
class Trainer:
    """Runs `task` on batches of `loader` for `config.run.max_steps` optimiser steps."""

    def __init__(self, config: TrainConfig, task, loader, info: DistInfo | None = None):
        self.config, self.task, self.loader = config, task, loader
        self.run = config.run
        self.info = info or DistInfo(device=resolve_device(config.run.device))
        self.out_dir = Path(self.run.out_dir)
        self.dtype = autocast_dtype(self.run.precision, self.info.device)
        if self.dtype is not None and hasattr(task.model, "llm"):
            # else autocast recasts the frozen LLM every step; FSDP2 wants one dtype per group
            if not (self.info.distributed and self.run.distributed == "fsdp"):
                store_frozen_llm_in(task.model, self.dtype)
            if self.info.device.type == "cpu":
                attention_in_fp32_on_cpu(task.model.llm)
        self.model = wrap_model(task.model, self.info, self.run.distributed)
        self.optimizer = build_optimizer(self.model, config.optim)
        self.scheduler = build_scheduler(self.optimizer, config.optim, self.run.max_steps)
        self.scaler = (torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None)
        self.metrics = MetricsLogger(self.out_dir, self.info.is_main, self.run.tensorboard)
        self.step = 0

    def _config_dict(self) -> dict:
        return dataclasses.asdict(self.config)

    def maybe_resume(self) -> bool:
        found = latest_checkpoint(self.out_dir) if self.run.resume else None
        if found is None:
            return False
        state = load_checkpoint(found, self.model, self.optimizer, self.scheduler, self.scaler,
                                self.info)
        self.step = state["step"]
        self.metrics.forget_after(self.step)
        if state["loader_state"] is not None:
            self.loader.load_state_dict(state["loader_state"])
        log.info("resumed from %s at step %d", found, self.step)
        return True

    def save(self) -> Path:
        return save_checkpoint(self.out_dir, self.step, self.model, self.optimizer,
                               self.scheduler, self.scaler, self.loader.state_dict(), self.info,
                               self._config_dict(), keep=self.run.keep_checkpoints)

    def _autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.info.device.type, dtype=self.dtype)

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.info.device, non_blocking=True) if torch.is_tensor(v) else v
                for k, v in batch.items()}

    def train_step(self, batches) -> dict[str, float]:
        """One optimiser step over `grad_accum` micro-batches; returns averaged scalars."""
        self.model.train()
        totals: dict[str, float] = {}
        seconds = 0.0
        accum = self.run.grad_accum
        for micro in range(accum):
            batch = self._to_device(next(batches))
            batch["step"] = self.step  # tasks may seed per-step randomness with it (Best-RQ masks)
            seconds += float(batch.get("seconds", 0.0))
            sync = micro == accum - 1 or not isinstance(
                self.model, torch.nn.parallel.DistributedDataParallel)
            with (contextlib.nullcontext() if sync else self.model.no_sync()):
                with self._autocast():
                    losses = self.task.loss(self.model, batch)
                loss = losses["loss"] / accum
                (self.scaler.scale(loss) if self.scaler else loss).backward()
            for name, value in losses.items():
                value = float(value.detach()) if torch.is_tensor(value) else float(value)
                totals[name] = totals.get(name, 0.0) + value / accum
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if self.config.optim.grad_clip > 0:
            totals["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(
                trainable, self.config.optim.grad_clip))
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        totals["lr"] = self.scheduler.get_last_lr()[0]
        totals["audio_seconds"] = seconds
        return totals

    def _mean_over_ranks(self, metrics: dict[str, float]) -> dict[str, float]:
        """Losses averaged over the ranks (audio seconds summed), for the log."""
        if not self.info.distributed:
            return metrics
        names = sorted(metrics)
        values = torch.tensor([metrics[n] for n in names], dtype=torch.float64,
                              device=self.info.device)
        dist.all_reduce(values)
        out = {n: float(v) / self.info.world_size for n, v in zip(names, values.tolist())}
        out["audio_seconds"] = out["audio_seconds"] * self.info.world_size
        return out

    def validate(self) -> dict[str, float]:
        if not hasattr(self.task, "validate"):
            return {}
        results: dict[str, float] = {}
        if self.info.is_main or self.run.distributed == "fsdp":
            model = unwrap(self.model)
            model.eval()
            with torch.no_grad(), self._autocast():
                results = self.task.validate(model)
        barrier(self.info)
        return results

    def fit(self) -> dict[str, float]:
        """Train to `max_steps` (resuming if a checkpoint exists); returns the last metrics."""
        if self.run.threads > 0:
            torch.set_num_threads(self.run.threads)
        self.maybe_resume()
        batches = self.loader.batches()
        window_start, window_steps, window_audio = time.perf_counter(), 0, 0.0
        last: dict[str, float] = {}
        while self.step < self.run.max_steps:
            metrics = self.train_step(batches)
            window_steps += 1
            window_audio += metrics["audio_seconds"]
            last = metrics
            if self.step % self.run.log_every == 0 or self.step == self.run.max_steps:
                metrics = last = self._mean_over_ranks(metrics)
                elapsed = time.perf_counter() - window_start
                metrics["steps_per_s"] = window_steps / elapsed
                metrics["audio_seconds_per_s"] = window_audio * self.info.world_size / elapsed
                metrics["epoch"] = self.loader.epoch
                self.metrics.log(self.step, metrics)
                if self.info.is_main:
                    log.info("step %d loss %.4f lr %.2e %.2f steps/s %.1f audio s/s",
                             self.step, metrics["loss"], metrics["lr"], metrics["steps_per_s"],
                             metrics["audio_seconds_per_s"])
                window_start, window_steps, window_audio = time.perf_counter(), 0, 0.0
            if self.run.val_every > 0 and (self.step % self.run.val_every == 0
                                           or self.step == self.run.max_steps):
                results = self.validate()
                if results:
                    self.metrics.log(self.step, results)
                    last.update(results)
                    if self.info.is_main:
                        log.info("step %d validation %s", self.step, results)
            if self.run.save_every > 0 and (self.step % self.run.save_every == 0
                                            or self.step == self.run.max_steps):
                self.save()
        if hasattr(self.task, "export"):
            gather_for_export(self.model)
            if self.info.is_main:
                self.task.export(unwrap(self.model), self.out_dir / "final")
        barrier(self.info)
        self.metrics.close()
        return last
