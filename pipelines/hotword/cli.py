"""`funfactory pipeline hotword run OUT_DIR`: hotword prompts with distractors (Fun-ASR 5.5).

    funfactory pipeline hotword run OUT [--shards IN_SHARDS] [--set max_distractors=300]
        [--set noise_only_per_unit=2]

Hotwords are mined from each reference transcript (names, terms, rare words); distractors come
from other recordings; noise-only samples carry hotword lists and an empty label.
"""

from __future__ import annotations

import argparse

from funfactory.pipelines.context.cli import register_synthesis_job, run_synthesis_job


def register(sub: argparse._SubParsersAction) -> None:
    register_synthesis_job(sub, "hotword", "hotword lists with distractors, and hotword prompts "
                           "on noise-only samples (section 5.5)", __doc__, "HotwordConfig",
                           "write hotword shards", _run, with_shards=True)


def _run(args) -> int:
    from funfactory.pipelines.hotword.pipeline import HotwordConfig, run_hotword

    return run_synthesis_job(args, HotwordConfig, run_hotword)
