"""`funfactory pipeline codeswitch run OUT_DIR`: code-switched zh-en speech (Fun-ASR section 5.4).

    funfactory pipeline codeswitch run OUT [--set samples=200] [--set generators=template-slot]
        [--set term_pool=my_terms.tsv] [--set voice_plans=kokoro-alpha,espeak-cmn+hibari-en]

Generators: `llm` (the configured LLM writes a Chinese sentence around the term; checked) and
`template-slot` (hand-written sentences with a term slot), used for the draws the LLM failed.
"""

from __future__ import annotations

import argparse

from funfactory.pipelines.context.cli import add_synthesis_job_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("codeswitch", help="code-switched zh-en speech from English term pools "
                                          "(section 5.4)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="codeswitch_cmd", metavar="ACTION", required=True)
    r = s.add_parser("run", help="write code-switched speech shards")
    r.add_argument("out", help="output folder (shards, index, _reports/, _work/)")
    add_synthesis_job_arguments(r, "CodeSwitchConfig")
    r.set_defaults(func=_run)


def _run(args) -> int:
    from funfactory.config import load_config
    from funfactory.pipelines.codeswitch.pipeline import CodeSwitchConfig, run_codeswitch
    from funfactory.pipelines.common.runner import (reparse_trailing_options,
                                                    runner_options_from_args)

    args = reparse_trailing_options(args, args.job_parser, ("out",))
    config = load_config(CodeSwitchConfig, args.config, args.set)
    report = run_codeswitch(args.out, config, options=runner_options_from_args(args),
                            restart=args.restart)
    return 0 if report["samples"] else 1
