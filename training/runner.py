"""One training run of one kind: Best-RQ, AED, staged SFT or contextual SFT (sections 4.1-4.3).

`run("sft", config)` joins the torchrun process group if there is one, builds the task's model
(identically on every rank from the run seed), the rank's streaming loader and the trainer, and
trains to `run.max_steps`, resuming from the newest checkpoint in `run.out_dir`.
"""

from __future__ import annotations

import logging

from funfactory.errors import FunfactoryError
from funfactory.training.config import AugmentConfig, TrainConfig

log = logging.getLogger(__name__)

KINDS = ("pretrain-bestrq", "pretrain-aed", "sft", "contextual")


def build_task(kind: str, config: TrainConfig):
    if kind == "pretrain-bestrq":
        from funfactory.training.bestrq import BestRQTask

        return BestRQTask(config)
    if kind == "pretrain-aed":
        from funfactory.training.aed import AEDTask

        return AEDTask(config)
    if kind in ("sft", "contextual"):
        from funfactory.training.sft import SFTTask

        if kind == "contextual":
            config.model.stage = "contextual"
        return SFTTask(config)
    raise FunfactoryError(f"unknown training kind {kind!r}; choose one of {KINDS}")


def build_augmenter(config: AugmentConfig):
    """The online noise augmenter (training/online_augment.py) when enabled, else None; the
    loader applies it to `config.fraction` of the samples."""
    if not config.enabled:
        return None
    from funfactory.training.online_augment import OnlineNoiseAugmenter

    return OnlineNoiseAugmenter.from_options(dict(config.options))


def run(kind: str, config: TrainConfig) -> dict[str, float]:
    import torch

    from funfactory.training.loader import StreamingLoader
    from funfactory.training.trainer import Trainer, setup_distributed

    if config.run.threads > 0:
        torch.set_num_threads(config.run.threads)
    info = setup_distributed(config.run)
    torch.manual_seed(config.run.seed)
    task = build_task(kind, config)
    loader = StreamingLoader(config.data, info.rank, info.world_size,
                             augmenter=build_augmenter(config.data.augment))
    return Trainer(config, task, loader, info).fit()
