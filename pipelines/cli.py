"""`funfactory pipeline ...`: the Beam jobs. Each pipeline's own `cli.py` adds its sub-command.

A pipeline package `pipelines/<name>/` with a `cli.py` that has `register(subparsers)` appears
here as `funfactory pipeline <name>`.
"""

from __future__ import annotations

import argparse
import importlib

PIPELINES = ("label", "augment", "streaming", "context", "codeswitch", "hotword", "rl")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="run a Beam pipeline (label, augment, synthesis, RL data)",
                       description="Apache Beam pipelines that turn raw audio into shards. "
                                   "Runner options after '--' go to Beam unchanged.")
    s = p.add_subparsers(dest="pipeline", metavar="PIPELINE", required=True)
    for name in PIPELINES:
        module = f"funfactory.pipelines.{name}.cli"
        try:
            importlib.import_module(module).register(s)
        except ModuleNotFoundError as e:
            if e.name not in (module, f"funfactory.pipelines.{name}"):
                raise
