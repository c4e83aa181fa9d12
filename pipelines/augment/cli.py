"""`funfactory pipeline augment ...`: noisy copies, noise-only negatives and babble noise.

    funfactory pipeline augment run IN_SHARDS OUT_DIR [--config augment.yaml] [--set snr.mean_db=5]
        [--direct_num_workers 2 --direct_running_mode multi_processing] [-- BEAM_OPTIONS]
    funfactory pipeline augment noise-split [--set noise.sources=debian,folder:/my/noise]
    funfactory pipeline augment babble OUT_DIR [--clips 6 --talkers 4 --seconds 8]

`add_job_arguments` and `job_options` are shared with `funfactory pipeline streaming`.
"""

from __future__ import annotations

import argparse
import json

from funfactory.errors import FunfactoryError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("augment", help="noise mixing, noise-only samples, room acoustics "
                                       "(sections 5.2, 5.6)",
                       description="Derive noisy and noise-only shards from labelled shards.")
    s = p.add_subparsers(dest="augment_cmd", metavar="ACTION", required=True)

    r = s.add_parser("run", help="augment labelled shards into new shards")
    r.add_argument("inputs", help="input shards: folder, glob or brace pattern")
    r.add_argument("out", help="output folder for shards, index and reports (_reports/)")
    r.add_argument("--no-report", action="store_true", help="skip the SNR/spectrogram PNGs")
    add_job_arguments(r, "AugmentConfig")
    r.set_defaults(func=_run)

    n = s.add_parser("noise-split", help="print the noise clips and their train/test split as "
                                         "JSON lines (the online augmenter's noise manifest)")
    _config_arguments(n, "AugmentConfig")
    n.set_defaults(func=_noise_split)

    b = s.add_parser("babble", help="write babble noise clips from several TTS voices")
    b.add_argument("out", help="folder for babble*.flac (use as noise source folder:OUT=babble)")
    b.add_argument("--clips", type=int, default=6)
    b.add_argument("--talkers", type=int, default=4)
    b.add_argument("--seconds", type=float, default=8.0)
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(func=_babble)


def _config_arguments(parser: argparse.ArgumentParser, config_name: str) -> None:
    parser.add_argument("--config", help=f"YAML config (fields of {config_name})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. seed=3 (repeatable)")


def add_job_arguments(parser: argparse.ArgumentParser, config_name: str) -> None:
    """--config, --set, --restart and the common Beam runner options (and '--' pass-through)."""
    from funfactory.pipelines.common.runner import add_runner_arguments

    _config_arguments(parser, config_name)
    parser.add_argument("--restart", action="store_true",
                        help="discard finished work in OUT/_work instead of resuming")
    add_runner_arguments(parser)


def job_options(args):
    """Beam options from the parsed runner arguments. argparse hands every word after the
    positional arguments to the '--' pass-through, so options written after IN OUT would reach
    Beam silently; refuse them instead."""
    from funfactory.pipelines.common.runner import runner_options_from_args

    own = ("--set", "--config", "--restart", "--no-report", "--runner", "--direct_num_workers",
           "--direct_running_mode", "--dask_address")
    misplaced = [a for a in args.beam_args if a.split("=", 1)[0] in own]
    if misplaced:
        raise FunfactoryError(f"options {misplaced} came after the input and output paths, where "
                              "they would go to Beam: put them before IN OUT")
    return runner_options_from_args(args)


def load_job_config(cls, args):
    from funfactory.config import load_config

    return load_config(cls, args.config, args.set)


def _run(args) -> int:
    from funfactory.pipelines.augment.config import AugmentConfig
    from funfactory.pipelines.augment.pipeline import run_augment

    result = run_augment(args.inputs, args.out, load_job_config(AugmentConfig, args),
                         job_options(args), report=not args.no_report, restart=args.restart)
    print(json.dumps(result.summary or {"samples": len(result.rows)}, indent=2,
                     ensure_ascii=False))
    return 0


def _noise_split(args) -> int:
    from funfactory.pipelines.augment.config import AugmentConfig
    from funfactory.pipelines.augment.noise_corpus import NoiseCorpus

    cfg = load_job_config(AugmentConfig, args)
    corpus = NoiseCorpus.from_sources(cfg.noise.sources)
    for row in corpus.manifest_rows():
        print(json.dumps(row, ensure_ascii=False))
    return 0


def _babble(args) -> int:
    from funfactory.pipelines.augment.babble import babble_texts, babble_voices, write_babble_folder

    clips = write_babble_folder(args.out, babble_voices(), babble_texts(), args.clips,
                                args.talkers, args.seconds, args.seed)
    print(f"wrote {len(clips)} babble clips to {args.out}")
    return 0
