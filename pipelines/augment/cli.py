"""`funfactory pipeline augment ...`: noisy copies, noise-only negatives and babble noise.

    funfactory pipeline augment run IN_SHARDS OUT_DIR [--config augment.yaml] [--set snr.mean_db=5]
        [-- --direct_num_workers=2 --direct_running_mode=multi_processing]
    funfactory pipeline augment noise-split [--set noise.sources=debian,folder:/my/noise]
    funfactory pipeline augment babble OUT_DIR [--clips 6 --talkers 4 --seconds 8]
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("augment", help="noise mixing, noise-only samples, room acoustics "
                                       "(sections 5.2, 5.6)",
                       description="Derive noisy and noise-only shards from labelled shards.")
    s = p.add_subparsers(dest="augment_cmd", metavar="ACTION", required=True)

    r = s.add_parser("run", help="augment labelled shards into new shards")
    r.add_argument("inputs", help="input shards: folder, glob or brace pattern")
    r.add_argument("out", help="output folder for shards, index and report")
    _config_args(r)
    r.add_argument("--no-report", action="store_true", help="skip the PNG/JSON report")
    r.add_argument("beam_args", nargs=argparse.REMAINDER,
                   help="after '--': Beam runner options, passed unchanged")
    r.set_defaults(func=_run)

    n = s.add_parser("noise-split", help="print the noise clips and their train/test split")
    _config_args(n)
    n.set_defaults(func=_noise_split)

    b = s.add_parser("babble", help="write babble noise clips from several espeak-ng voices")
    b.add_argument("out", help="folder for babble*.flac (use as noise source folder:OUT=babble)")
    b.add_argument("--clips", type=int, default=6)
    b.add_argument("--talkers", type=int, default=4)
    b.add_argument("--seconds", type=float, default=8.0)
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(func=_babble)


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config (fields of AugmentConfig)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. snr.std_db=3 (repeatable)")


def _load(args):
    from funfactory.config import load_config
    from funfactory.pipelines.augment.config import AugmentConfig

    return load_config(AugmentConfig, args.config, args.set)


def _run(args) -> int:
    from funfactory.pipelines.augment.pipeline import run_augment

    beam_args = [a for a in args.beam_args if a != "--"]
    result = run_augment(args.inputs, args.out, _load(args), beam_args,
                         report=not args.no_report)
    print(json.dumps(result.report or {"samples": len(result.rows)}, indent=2,
                     ensure_ascii=False))
    return 0


def _noise_split(args) -> int:
    from funfactory.pipelines.augment.noise_corpus import NoiseCorpus

    cfg = _load(args)
    corpus = NoiseCorpus.from_sources(cfg.noise.sources, cfg.noise.test_fraction,
                                      cfg.noise.split_salt)
    for row in corpus.manifest_rows():
        print(json.dumps(row, ensure_ascii=False))
    return 0


def _babble(args) -> int:
    from funfactory.pipelines.augment.babble import babble_texts, babble_voices, write_babble_folder

    clips = write_babble_folder(args.out, babble_voices(), babble_texts(), args.clips,
                                args.talkers, args.seconds, args.seed)
    print(f"wrote {len(clips)} babble clips to {args.out}")
    return 0
