"""The `funfactory` command. Each area adds its own sub-commands.

An area's `cli.py` has `register(subparsers)`, which adds one sub-command (with its own
sub-commands) and sets `func` on each leaf parser. Area CLIs import heavy libraries (torch,
Beam) inside their handlers, so `funfactory --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from funfactory import __version__
from funfactory.errors import FunfactoryError

AREAS = (
    "funfactory.shards.cli",
    "funfactory.pipelines.cli",
    "funfactory.synth.cli",
    "funfactory.model.cli",
    "funfactory.training.cli",
    "funfactory.eval.cli",
    "funfactory.pipelines.testset_cli",
    "funfactory.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="funfactory",
        description="Data factory and trainer for LLM-based ASR (after Fun-ASR, 2025).")
    parser.add_argument("--version", action="version", version=f"funfactory {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="area", metavar="COMMAND")
    for module in AREAS:
        try:
            area = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        area.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except FunfactoryError as e:
        print(f"funfactory: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
