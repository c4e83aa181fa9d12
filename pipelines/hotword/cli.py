"""`funfactory pipeline hotword run OUT_DIR`: hotword prompts with distractors (Fun-ASR 5.5).

    funfactory pipeline hotword run OUT [--shards IN_SHARDS] [--set max_distractors=300]
        [--set noise_only_per_unit=2]

Hotwords are mined from each reference transcript (names, terms, rare words); distractors come
from other recordings; noise-only samples carry hotword lists and an empty label.
"""

from __future__ import annotations

import argparse

from funfactory.pipelines.context.cli import add_synthesis_job_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hotword", help="hotword lists with distractors, and hotword prompts on "
                                       "noise-only samples (section 5.5)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="hotword_cmd", metavar="ACTION", required=True)
    r = s.add_parser("run", help="write hotword shards")
    r.add_argument("out", help="output folder (shards, index, _reports/, _work/)")
    r.add_argument("--shards", help="input shards folder (default: the embedded corpus)")
    add_synthesis_job_arguments(r, "HotwordConfig")
    r.set_defaults(func=_run)


def _run(args) -> int:
    from funfactory.config import load_config
    from funfactory.pipelines.common.runner import (reparse_trailing_options,
                                                    runner_options_from_args)
    from funfactory.pipelines.hotword.pipeline import HotwordConfig, run_hotword

    args = reparse_trailing_options(args, args.job_parser, ("out",))
    config = load_config(HotwordConfig, args.config, args.set)
    report = run_hotword(args.out, config, shards=args.shards,
                         options=runner_options_from_args(args), restart=args.restart)
    return 0 if report["samples"] else 1
