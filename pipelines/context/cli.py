"""`funfactory pipeline context run OUT_DIR`: contextual SFT shards (Fun-ASR section 4.3).

    funfactory pipeline context run OUT [--shards IN_SHARDS] [--config context.yaml]
        [--set llm.model=smollm2-135m-instruct --set generators=retrieval-keyword]
        [--runner DirectRunner ...] [-- BEAM_OPTIONS]

Without --shards the embedded default corpus (`corpus_scale`) is the input. The report lands in
OUT/_reports/context-report.json with the yield of each step.
"""

from __future__ import annotations

import argparse


def add_synthesis_job_arguments(parser: argparse.ArgumentParser, config_name: str) -> None:
    """--config, --set, --restart and the Beam runner options: shared by context, codeswitch
    and hotword."""
    from funfactory.pipelines.common.runner import add_runner_arguments

    parser.add_argument("--config", help=f"YAML config (fields of {config_name})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. llm.model=smollm2-135m-instruct")
    parser.add_argument("--restart", action="store_true",
                        help="discard finished work in OUT/_work instead of resuming")
    add_runner_arguments(parser)
    parser.set_defaults(job_parser=parser)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("context", help="contextual SFT data: keywords, context pieces, "
                                       "irrelevant mixing, previous-segment prompts (section 4.3)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="context_cmd", metavar="ACTION", required=True)
    r = s.add_parser("run", help="write contextual SFT shards")
    r.add_argument("out", help="output folder (shards, index, _reports/, _work/)")
    r.add_argument("--shards", help="input shards folder (default: the embedded corpus)")
    add_synthesis_job_arguments(r, "ContextConfig")
    r.set_defaults(func=_run)


def _run(args) -> int:
    from funfactory.config import load_config
    from funfactory.pipelines.common.runner import (reparse_trailing_options,
                                                    runner_options_from_args)
    from funfactory.pipelines.context.config import ContextConfig
    from funfactory.pipelines.context.pipeline import run_context

    args = reparse_trailing_options(args, args.job_parser, ("out",))
    config = load_config(ContextConfig, args.config, args.set)
    report = run_context(args.out, config, shards=args.shards,
                         options=runner_options_from_args(args), restart=args.restart)
    return 0 if report["samples"] else 1
