"""`funfactory train ...`: one command per training stage (Fun-ASR sections 4.1-4.3).

    funfactory train pretrain-bestrq --config training/configs/bestrq-tiny.yaml run.max_steps=200
    funfactory train pretrain-aed    --config training/configs/aed-tiny.yaml
    funfactory train sft             --config training/configs/sft-stage1-adaptor.yaml model.stage=2
    funfactory train contextual      --config training/configs/contextual.yaml
    torchrun --nproc_per_node 8 -m funfactory.cli train sft --config ...   (DDP; run.distributed=fsdp)

Trailing `key.sub=value` arguments override the YAML. `--print-config` shows the merged config.
"""

from __future__ import annotations

import argparse

KINDS = ("pretrain-bestrq", "pretrain-aed", "sft", "contextual")
HELP = {
    "pretrain-bestrq": "Best-RQ self-supervised encoder pre-training (section 4.1)",
    "pretrain-aed": "supervised AED encoder pre-training, CE + joint CTC (section 4.1)",
    "sft": "staged SFT of the LLM-ASR model; model.stage=1..5 (section 4.2)",
    "contextual": "contextual SFT with hotword and streaming samples mixed by weight (section 4.3)",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train encoders and the LLM-ASR model",
                                   description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind in KINDS:
        leaf = kinds.add_parser(kind, help=HELP[kind], description=HELP[kind])
        leaf.add_argument("--config", help="YAML config (training/configs/*.yaml)")
        leaf.add_argument("--print-config", action="store_true",
                          help="print the merged config and exit")
        leaf.add_argument("overrides", nargs="*", help="dotted overrides, e.g. run.max_steps=100")
        leaf.set_defaults(func=handle)

    from funfactory.training.grpo_cli import register_grpo
    register_grpo(kinds)


def handle(args) -> int:
    import json
    import os

    from funfactory.config import dump_config, load_config
    from funfactory.training.config import TrainConfig
    from funfactory.training.runner import run

    config = load_config(TrainConfig, args.config, args.overrides)
    if args.print_config:
        print(dump_config(config))
        return 0
    results = run(args.kind, config)
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps({k: v for k, v in results.items() if isinstance(v, (int, float))}))
    return 0

