"""`funfactory pipeline rl ...`: the RL data set of section 4.4.3.

    funfactory pipeline rl run [--model MODEL_DIR] [--config rl.yaml]
        [--set agreement_max=0.05 --set per_subset_max=2000] [--restart]
        [--runner DirectRunner --direct_num_workers 2] IN_SHARDS OUT_DIR [-- BEAM_OPTIONS]

Options go before IN_SHARDS OUT_DIR; what follows them goes to Beam.

Without `--model`, each sample's current-model hypothesis is read from `labels.current_model`
(`--set model_label=NAME` for another entry).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rl", help="RL data: hard, long, hallucination, keyword and regular "
                                  "samples in equal shares (section 4.4.3)",
                       description="Select and tag the GRPO training set from labelled shards.")
    s = p.add_subparsers(dest="rl_cmd", metavar="ACTION", required=True)
    r = s.add_parser("run", help="classify labelled shards and write the balanced RL shards")
    r.add_argument("inputs", help="input shards: folder, glob or brace pattern")
    r.add_argument("out", help="output folder for shards, index and reports (_reports/)")
    r.add_argument("--model", help="model folder (save_model) whose greedy output is the "
                                   "'current model' hypothesis")
    from funfactory.pipelines.augment.cli import add_job_arguments

    add_job_arguments(r, "RLDataConfig")
    r.set_defaults(func=_run)


def _run(args) -> int:
    from funfactory.pipelines.augment.cli import job_options, load_job_config
    from funfactory.pipelines.rl.config import RLDataConfig
    from funfactory.pipelines.rl.pipeline import run_rl_data

    from funfactory.errors import FunfactoryError

    if any(a.split("=", 1)[0] == "--model" for a in args.beam_args):
        raise FunfactoryError("--model came after the input and output paths, where it would go "
                              "to Beam: put it before IN OUT")
    config = load_job_config(RLDataConfig, args)
    result = run_rl_data(args.inputs, args.out, config, model_dir=args.model,
                         options=job_options(args), restart=args.restart)
    return 0 if result.summary["samples"] else 1
