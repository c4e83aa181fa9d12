"""`funfactory pipeline streaming run IN_SHARDS OUT_DIR [--config streaming.yaml]
[--set chunk_ms=560] [--direct_num_workers 2] [-- BEAM_OPTIONS]`: simulated streaming prefixes
(section 5.1)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    from funfactory.pipelines.augment.cli import add_job_arguments

    p = sub.add_parser("streaming", help="chunked streaming prefixes with aligned partial text "
                                         "(section 5.1)",
                       description="Derive simulated-streaming shards from labelled shards.")
    s = p.add_subparsers(dest="streaming_cmd", metavar="ACTION", required=True)
    r = s.add_parser("run", help="write chunked prefixes of every labelled utterance")
    r.add_argument("inputs", help="input shards: folder, glob or brace pattern")
    r.add_argument("out", help="output folder for shards, index and reports (_reports/)")
    add_job_arguments(r, "StreamingConfig")
    r.set_defaults(func=_run)


def _run(args) -> int:
    from funfactory.pipelines.augment.cli import job_options, load_job_config
    from funfactory.pipelines.streaming.config import StreamingConfig
    from funfactory.pipelines.streaming.pipeline import run_streaming

    result = run_streaming(args.inputs, args.out, load_job_config(StreamingConfig, args),
                           job_options(args), restart=args.restart)
    print(json.dumps(result.summary, indent=2, ensure_ascii=False))
    return 0
