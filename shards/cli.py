"""`funfactory shards ...`: verify, stats, inspect and lhotse import."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shards", help="check, describe and convert shard sets",
                       description="Work with WebDataset shards and their Parquet index.")
    s = p.add_subparsers(dest="shards_cmd", metavar="ACTION", required=True)

    v = s.add_parser("verify", help="check every shard against its index (with none: member "
                                    "safety, schema, audio); non-zero exit on problems")
    v.add_argument("folder", help="shard folder (with its *.parquet index, if any)")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.set_defaults(func=_verify)

    st = s.add_parser("stats", help="hours and counts by split, task, language; duration PNG")
    st.add_argument("folder")
    st.add_argument("--png", help="where to write the duration histogram "
                                  "(default FOLDER/stats-durations.png)")
    st.set_defaults(func=_stats)

    i = s.add_parser("inspect", help="print one sample's JSON and audio summary")
    i.add_argument("folder")
    i.add_argument("key")
    i.add_argument("--audio-out", help="also write the sample's audio to this .wav/.flac")
    i.set_defaults(func=_inspect)

    lh = s.add_parser("from-lhotse", help="write a lhotse CutSet manifest into shards")
    lh.add_argument("cuts", help="lhotse cuts manifest (.jsonl or .jsonl.gz)")
    lh.add_argument("out", help="output shard folder")
    lh.add_argument("--dataset", required=True)
    lh.add_argument("--split", default="train")
    lh.set_defaults(func=_from_lhotse)


def _verify(args) -> int:
    from funfactory.shards.verify import verify

    report = verify(args.folder)
    if args.json:
        print(json.dumps({"ok": report.ok, "shards": report.shards, "samples": report.samples,
                          "per_shard": report.per_shard,
                          "problems": [vars(p) for p in report.problems],
                          "warnings": [vars(p) for p in report.warnings]},
                         ensure_ascii=False, indent=2))
    else:
        for w in report.warnings:
            print(f"warning: {w}")
        for p in report.problems:
            print(f"PROBLEM: {p}")
        for shard, counts in report.per_shard.items():
            print(f"  {shard}: {counts['samples']} samples, {counts['problems']} problems")
        verdict = "OK" if report.ok else f"FAILED ({len(report.problems)} problems: " \
                                          f"{report.by_reason()})"
        print(f"verify {args.folder}: {report.shards} shards, {report.samples} samples: {verdict}")
    return 0 if report.ok else 1


def _stats(args) -> int:
    from pathlib import Path

    from funfactory.shards.stats import compute_stats, duration_histogram

    stats = compute_stats(args.folder)
    print(stats.table())
    png = duration_histogram(stats, args.png or Path(args.folder) / "stats-durations.png",
                             title=Path(args.folder).name)
    print(f"duration histogram: {png}")
    return 0


def _inspect(args) -> int:
    from funfactory.shards.inspect import describe, find_sample

    meta, audio, row = find_sample(args.folder, args.key)
    print(describe(meta, audio, row))
    if args.audio_out:
        import soundfile as sf

        sf.write(args.audio_out, audio, 16000)
        print(f"audio written to {args.audio_out}", file=sys.stderr)
    return 0


def _from_lhotse(args) -> int:
    from lhotse import CutSet

    from funfactory.shards.interop import from_cutset

    shards = from_cutset(CutSet.from_file(args.cuts), args.out, args.dataset, args.split)
    print(f"wrote {len(shards)} shards to {args.out}")
    return 0
