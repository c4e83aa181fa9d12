"""`funfactory shards ...`: verify, stats, inspect, export to other toolkits and import from them."""

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

    from funfactory.shards.toolkits import FORMATS

    ex = s.add_parser("export", help="write shards in another toolkit's format "
                                     f"({', '.join(FORMATS)})",
                      description="Stream a shard set into Fun-ASR JSONL, a NeMo tarred "
                                  "dataset, lhotse Shar or a Kaldi data directory; writes "
                                  "OUT/export-report.json (counts, hours, skips and why).")
    ex.add_argument("--format", required=True, choices=FORMATS)
    ex.add_argument("shards", help="shard folder, glob or brace pattern")
    ex.add_argument("out", help="output folder")
    ex.add_argument("--shard-size", type=int, default=1000,
                    help="samples per tar (nemo, lhotse-shar)")
    ex.set_defaults(func=_export)

    for name, source, what in (
            ("kaldi", "data_dir", "a Kaldi data directory (wav.scp, text, segments, utt2spk)"),
            ("nemo", "manifest", "a NeMo manifest (tarred, or of audio files)"),
            ("funasr", "jsonl", "a Fun-ASR fine-tuning ChatML JSONL"),
            ("shar", "shar_dir", "a lhotse Shar folder")):
        im = s.add_parser(f"from-{name}", help=f"write {what} into shards")
        im.add_argument(source, metavar=source.upper())
        im.add_argument("out", help="output shard folder")
        im.add_argument("--dataset", required=True)
        im.add_argument("--split", default="train")
        if name == "nemo":
            im.add_argument("--tars", help="where a tarred manifest's tars are, as NeMo's "
                                           "audio__OP_0..N_CL_.tar pattern (default: "
                                           "audio_{shard_id}.tar beside the manifest)")
        im.set_defaults(func=_import, toolkit=name, source_arg=source)


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


def _export(args) -> int:
    from funfactory.shards.toolkits.common import Progress, export_shards

    options = {"shard_size": args.shard_size} if args.format in ("nemo", "lhotse-shar") else {}
    report = export_shards(args.shards, args.out, args.format,
                           progress=Progress(f"export {args.format}"), **options)
    print(report.text())
    return 0


def _import(args) -> int:
    source = getattr(args, args.source_arg)
    if args.toolkit == "shar":
        from lhotse import CutSet

        from funfactory.shards.interop import from_cutset

        shards = from_cutset(CutSet.from_shar(in_dir=source), args.out, args.dataset, args.split,
                             pipeline="lhotse-shar-import")
        print(f"wrote {len(shards)} shards to {args.out}")
        return 0
    from funfactory.shards.toolkits import funasr, kaldi, nemo
    from funfactory.shards.toolkits.common import Progress, import_utterances

    if args.toolkit == "nemo":
        utterances = nemo.read(source, tars=args.tars)
    else:
        utterances = {"kaldi": kaldi, "funasr": funasr}[args.toolkit].read(source)
    report = import_utterances(utterances, args.out, args.toolkit, source, args.dataset,
                               args.split, progress=Progress(f"import {args.toolkit}"))
    print(report.text())
    return 0
