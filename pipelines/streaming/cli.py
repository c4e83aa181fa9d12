"""`funfactory pipeline streaming run IN_SHARDS OUT_DIR [--config streaming.yaml]
[--set chunk_ms=560] [-- BEAM_OPTIONS]`: simulated streaming prefixes (section 5.1)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("streaming", help="chunked streaming prefixes with aligned partial text "
                                         "(section 5.1)",
                       description="Derive simulated-streaming shards from labelled shards.")
    s = p.add_subparsers(dest="streaming_cmd", metavar="ACTION", required=True)
    r = s.add_parser("run", help="write chunked prefixes of every labelled utterance")
    r.add_argument("inputs", help="input shards: folder, glob or brace pattern")
    r.add_argument("out", help="output folder for shards, index and report")
    r.add_argument("--config", help="YAML config (fields of StreamingConfig)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. chunk_ms=560 (repeatable)")
    r.add_argument("beam_args", nargs=argparse.REMAINDER,
                   help="after '--': Beam runner options, passed unchanged")
    r.set_defaults(func=_run)


def _run(args) -> int:
    from funfactory.config import load_config
    from funfactory.pipelines.streaming.config import StreamingConfig
    from funfactory.pipelines.streaming.pipeline import run_streaming

    config = load_config(StreamingConfig, args.config, args.set)
    result = run_streaming(args.inputs, args.out, config,
                           [a for a in args.beam_args if a != "--"])
    print(json.dumps(result.report, indent=2, ensure_ascii=False))
    return 0
