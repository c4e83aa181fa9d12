"""`funfactory pipeline codeswitch run OUT_DIR`: code-switched zh-en speech (Fun-ASR section 5.4).

    funfactory pipeline codeswitch run OUT [--set samples=200] [--set generators=template-slot]
        [--set term_pool=my_terms.tsv] [--set voice_plans=kokoro-alpha,espeak-cmn+hibari-en]

Generators: `llm` (the configured LLM writes a Chinese sentence around the term; checked) and
`template-slot` (hand-written sentences with a term slot), used for the draws the LLM failed.
"""

from __future__ import annotations

import argparse

from funfactory.pipelines.context.cli import register_synthesis_job, run_synthesis_job


def register(sub: argparse._SubParsersAction) -> None:
    register_synthesis_job(sub, "codeswitch", "code-switched zh-en speech from English term "
                           "pools (section 5.4)", __doc__, "CodeSwitchConfig",
                           "write code-switched speech shards", _run, with_shards=False)


def _run(args) -> int:
    from funfactory.pipelines.codeswitch.pipeline import CodeSwitchConfig, run_codeswitch

    return run_synthesis_job(args, CodeSwitchConfig, run_codeswitch)
