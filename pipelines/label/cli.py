"""``funfactory pipeline label``: run or resume the labelling pipeline, or print its config.

    funfactory pipeline label run INPUT OUT [--config label.yaml] [--set vad.pad_seconds=0.3 ...]
        [--restart] [--runner DirectRunner|DaskRunner|...] [--direct_num_workers N]
        [--direct_running_mode in_memory|multi_threading|multi_processing]
        [--dask_address tcp://...] [-- extra Beam options]
    funfactory pipeline label config [--config label.yaml] [--set ...]

INPUT is a folder of audio, a JSONL list or a lhotse manifest. OUT receives the shards, their
index, ``_reports/label-report.json``, ``label-rejects.parquet``, ``label-durations.png`` and
the resumable work folder ``_work``.
"""

from __future__ import annotations

import argparse


def _config(ns):
    from funfactory.config import load_config
    from funfactory.pipelines.label.config import LabelConfig
    return load_config(LabelConfig, ns.config, ns.set)


def _run(ns) -> int:
    import logging

    from funfactory.pipelines.common.runner import (reparse_trailing_options,
                                                    runner_options_from_args)
    from funfactory.pipelines.label.pipeline import run_label
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    ns = reparse_trailing_options(ns, ns.job_parser, ("input", "out"))
    report = run_label(_config(ns), ns.input, ns.out, options=runner_options_from_args(ns),
                       restart=ns.restart)
    return 1 if report.unaccounted else 0


def _show_config(ns) -> int:
    from funfactory.config import config_sha256, dump_config
    cfg = _config(ns)
    print(dump_config(cfg), end="")
    print(f"# config_sha256: {config_sha256(cfg)}")
    return 0


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="YAML file with LabelConfig fields")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. vote.max_estimated_wer=0.05 (repeatable)")


def register(subparsers) -> None:
    from funfactory.pipelines.common.runner import add_runner_arguments
    p = subparsers.add_parser("label", help="VAD + multi-system pseudo-labels + ITN + filters "
                                            "-> shards (Fun-ASR 3.1)",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="label_command", metavar="COMMAND", required=True)
    run = s.add_parser("run", help="label INPUT into shards in OUT (resumes an interrupted job)")
    run.add_argument("input", help="audio folder, JSONL list, lhotse manifest, Kaldi data "
                                    "directory, NeMo manifest or Fun-ASR JSONL")
    run.add_argument("out", help="output folder for shards and reports")
    _add_config_args(run)
    run.add_argument("--restart", action="store_true",
                     help="discard the work folder of an earlier run instead of resuming it")
    add_runner_arguments(run)
    run.set_defaults(func=_run, job_parser=run)
    show = s.add_parser("config", help="print the effective config as YAML")
    _add_config_args(show)
    show.set_defaults(func=_show_config)
