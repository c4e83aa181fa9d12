"""Helpers for the training tests: shards of real TTS speech with known text, and a tiny model.

Imported by tests/test_loader.py and tests/test_training*.py (fixtures live in those files; the
`speech_clips` fixture of tests/conftest.py supplies the speech).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from funfactory.shards.keys import segment_key
from funfactory.shards.schema import new_meta
from funfactory.shards.writer import ShardWriter


def write_speech_shards(folder: Path, clips: list[tuple[str, np.ndarray]], n_samples: int,
                        per_shard: int, dataset: str = "speech", split: str = "train",
                        languages: tuple[str, ...] = ("en",), task: str = "asr",
                        seed: int = 0) -> list[str]:
    """`n_samples` samples cut from the clips at varied lengths (0.6-1.0 of each clip), with the
    clip's text; returns the keys written."""
    rng = np.random.default_rng(seed)
    keys = []
    with ShardWriter(folder, dataset, split, max_count=per_shard) as writer:
        for i in range(n_samples):
            text, audio = clips[i % len(clips)]
            take = audio[: int(len(audio) * rng.uniform(0.6, 1.0))] if task == "unlabelled" else audio
            key = segment_key(f"src{dataset}", i)
            writer.write(new_meta(key=key, text="" if task == "unlabelled" else text.lower(),
                                  language=languages[i % len(languages)],
                                  duration=len(take) / 16000, task=task, source_id=f"src{dataset}",
                                  uri=f"file:///{dataset}.wav", pipeline="test", version="0",
                                  config_sha256=""), take)
            keys.append(key)
    return keys


def varied_clips(clips: list[tuple[str, np.ndarray]], seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """The clips trimmed to varied lengths for bucketing tests (the text no longer matches the
    audio: for loader tests only)."""
    rng = np.random.default_rng(seed)
    return [(t, a[: max(1600, int(len(a) * rng.uniform(0.3, 1.0)))]) for t, a in clips]


def bestrq_config(shards: str, out_dir: Path, **run):
    """A small Best-RQ run on `shards`: fixed-size batches in shard order, CPU, fp32."""
    from funfactory.training.config import (BestRQConfig, LoaderConfig, OptimConfig, RunConfig,
                                            StreamConfig, TrainConfig)

    run_fields = dict(out_dir=str(out_dir), max_steps=4, log_every=1, save_every=0, val_every=0,
                      device="cpu", precision="fp32", tensorboard=False, threads=1)
    run_fields.update(run)
    return TrainConfig(
        data=LoaderConfig(streams=[StreamConfig(name="speech", shards=[shards])], batch_size=2,
                          shuffle_shards=False, shuffle_buffer=1),
        optim=OptimConfig(lr=2e-3, warmup_steps=2, schedule="constant", grad_clip=1.0),
        run=RunConfig(**run_fields),
        bestrq=BestRQConfig(codebook_size=64, codebook_dim=8, mask_prob=0.08, mask_span=4))


def spawned_rank(rank: int, world: int, port: int, kind: str, config) -> None:
    """Entry of one torch.multiprocessing-spawned rank: join a gloo group over localhost."""
    import os

    import torch

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from funfactory.training.runner import run

    run(kind, config)
    import torch.distributed as dist

    dist.destroy_process_group()


def sft_config(shards: str, out_dir: Path, llm: Path, stage: str, **run):
    """A small SFT / AED run on labelled `shards` with the tiny model, on the CPU."""
    from funfactory.training.config import (LoaderConfig, ModelSetup, OptimConfig, RunConfig,
                                            StreamConfig, TrainConfig)

    run_fields = dict(out_dir=str(out_dir), max_steps=3, log_every=1, save_every=0, val_every=0,
                      device="cpu", precision="fp32", tensorboard=False, threads=1,
                      val_batch_size=8)
    run_fields.update(run)
    return TrainConfig(
        data=LoaderConfig(streams=[StreamConfig(name="asr", shards=[shards])], batch_size=7,
                          shuffle_buffer=7),
        model=ModelSetup(size="tiny", llm_path=str(llm), stage=stage, ctc_vocab_size=600),
        optim=OptimConfig(lr=2e-3, warmup_steps=5, schedule="constant"),
        run=RunConfig(**run_fields))
