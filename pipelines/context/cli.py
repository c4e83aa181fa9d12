"""`funfactory pipeline context run OUT_DIR`: contextual SFT shards (Fun-ASR section 4.3).

    funfactory pipeline context run OUT [--shards IN_SHARDS] [--config context.yaml]
        [--set llm.model=smollm2-135m-instruct --set generators=retrieval-keyword]
        [--runner DirectRunner ...] [-- BEAM_OPTIONS]

Without --shards the embedded default corpus (`corpus_scale`) is the input. The report lands in
OUT/_reports/context-report.json with the yield of each step.
"""

from __future__ import annotations

import argparse


def register_synthesis_job(sub: argparse._SubParsersAction, name: str, help: str, doc: str,
                           config_name: str, run_help: str, handler, with_shards: bool) -> None:
    """`funfactory pipeline NAME run OUT [--shards IN]` with --config, --set, --restart and the
    Beam runner options: the shape shared by context, codeswitch and hotword."""
    from funfactory.pipelines.common.runner import add_runner_arguments

    p = sub.add_parser(name, help=help, description=doc,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest=f"{name}_cmd", metavar="ACTION", required=True)
    r = s.add_parser("run", help=run_help)
    r.add_argument("out", help="output folder (shards, index, _reports/, _work/)")
    if with_shards:
        r.add_argument("--shards", help="input shards folder (default: the embedded corpus)")
    r.add_argument("--config", help=f"YAML config (fields of {config_name})")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. llm.model=smollm2-135m-instruct")
    r.add_argument("--restart", action="store_true",
                   help="discard finished work in OUT/_work instead of resuming")
    add_runner_arguments(r)
    r.set_defaults(func=handler, job_parser=r)


def run_synthesis_job(args: argparse.Namespace, config_cls, run) -> int:
    """Parse trailing options, load the config and run `run(out, config, ...)`; exit 1 when
    the job wrote no sample."""
    from funfactory.config import load_config
    from funfactory.pipelines.common.runner import (reparse_trailing_options,
                                                    runner_options_from_args)

    args = reparse_trailing_options(args, args.job_parser, ("out",))
    config = load_config(config_cls, args.config, args.set)
    inputs = {"shards": args.shards} if hasattr(args, "shards") else {}
    report = run(args.out, config, options=runner_options_from_args(args),
                 restart=args.restart, **inputs)
    return 0 if report["samples"] else 1


def register(sub: argparse._SubParsersAction) -> None:
    register_synthesis_job(sub, "context", "contextual SFT data: keywords, context pieces, "
                           "irrelevant mixing, previous-segment prompts (section 4.3)", __doc__,
                           "ContextConfig", "write contextual SFT shards", _run, with_shards=True)


def _run(args) -> int:
    from funfactory.pipelines.context.config import ContextConfig
    from funfactory.pipelines.context.pipeline import run_context

    return run_synthesis_job(args, ContextConfig, run_context)
