"""`funfactory testset build|export|import|check`: leakage-free test sets (section 6.1).

See :mod:`funfactory.pipelines.testset` for what each step does and writes.
"""

from __future__ import annotations

import argparse
import json
import sys


def _add_leakage_options(parser: argparse.ArgumentParser) -> None:
    from funfactory.eval.leakage import MIN_TEXT_CHARS, TEXT_THRESHOLD

    parser.add_argument("--text-threshold", type=float, default=TEXT_THRESHOLD,
                        help="n-gram Jaccard similarity that counts as a near-duplicate text "
                             f"(default {TEXT_THRESHOLD})")
    parser.add_argument("--min-text-chars", type=int, default=MIN_TEXT_CHARS,
                        help="shorter texts are judged by audio only (default %(default)s)")
    parser.add_argument("--no-audio", action="store_true",
                        help="compare text only (no audio decoding or fingerprints)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes decoding and fingerprinting shards (default 1)")


def _config(args, cutoff: str = ""):
    from funfactory.pipelines.testset import TestsetConfig

    return TestsetConfig(cutoff=cutoff, text_threshold=args.text_threshold,
                         min_text_chars=args.min_text_chars, audio=not args.no_audio,
                         workers=args.workers)


def _print(summary: dict) -> None:
    print(json.dumps(summary, ensure_ascii=False, indent=1))


def _build(args) -> int:
    from funfactory.pipelines.testset import build_testset

    result = build_testset(args.pool, args.train, args.out, _config(args, args.cutoff))
    report = result.report
    _print({k: report[k] for k in ("pool_items", "after_cutoff", "on_or_before_cutoff", "undated",
                                   "bad_date", "removed_for_leakage", "kept")})
    print(f"kept items for transcription: {args.out}/transcription.csv (and .jsonl); "
          f"leakage report: {args.out}/leakage.md", file=sys.stderr)
    return 0


def _export(args) -> int:
    from funfactory.pipelines.testset import export_for_transcription, read_kept

    csv_path, jsonl_path = export_for_transcription(read_kept(args.kept), args.out)
    print(f"{csv_path}\n{jsonl_path}")
    return 0


def _import(args) -> int:
    from funfactory.pipelines.testset import import_transcripts

    _print(import_transcripts(args.transcripts, args.out, args.dataset, args.split))
    return 0


def _check(args) -> int:
    from funfactory.pipelines.testset import check_shards

    summary = check_shards(args.train, args.test, args.out, _config(args))
    _print({k: v for k, v in summary.items() if k != "leaking"})
    return 1 if summary["leaking test items"] else 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "testset", help="build leakage-free test sets (Fun-ASR 6.1)",
        description="Date cutoff, dedup against training shards by text and audio, export for "
                    "human transcription, import transcripts as test shards.")
    sub = parser.add_subparsers(dest="testset_command", metavar="STEP", required=True)

    build = sub.add_parser("build", help="pool -> kept items, leakage report, transcription export")
    build.add_argument("--pool", required=True, help="JSONL manifest or folder of audio (+ .json)")
    build.add_argument("--train", required=True, nargs="+", help="training shards (folder, glob, list)")
    build.add_argument("--cutoff", required=True, help="keep items published after this date (YYYY-MM-DD)")
    build.add_argument("--out", required=True, help="output folder")
    _add_leakage_options(build)
    build.set_defaults(func=_build)

    export = sub.add_parser("export", help="kept.jsonl -> transcription.csv / .jsonl")
    export.add_argument("--kept", required=True, help="kept.jsonl written by build")
    export.add_argument("--out", required=True, help="output folder")
    export.set_defaults(func=_export)

    imp = sub.add_parser("import", help="filled-in transcription file -> test shard set")
    imp.add_argument("--transcripts", required=True, help="transcription.csv or .jsonl, text filled in")
    imp.add_argument("--out", required=True, help="shard output folder")
    imp.add_argument("--dataset", default="testset", help="dataset name of the shards")
    imp.add_argument("--split", default="test", help="split name of the shards")
    imp.set_defaults(func=_import)

    check = sub.add_parser("check", help="overlap between training and test shard sets; exit 1 on leaks")
    check.add_argument("--train", required=True, nargs="+", help="training shards")
    check.add_argument("--test", required=True, nargs="+", help="test shards")
    check.add_argument("--out", required=True, help="folder for leakage.md / leakage.jsonl")
    _add_leakage_options(check)
    check.set_defaults(func=_check)
