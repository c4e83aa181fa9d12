"""Every `funfactory` command in the README and the user guides parses with the real CLI, and
names a sub-command that exists (the demo runs them for real; see funfactory/demo_stages.py)."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from funfactory.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, str]]:
    commands = []
    for page in PAGES:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
            for line in block.splitlines():
                line = line.split("  #", 1)[0].strip()
                if line.startswith("funfactory "):
                    commands.append((page.name, line.removeprefix("funfactory ")))
                elif "-m funfactory.cli " in line:
                    commands.append((page.name, line.split("-m funfactory.cli ", 1)[1]))
    return commands


def test_the_guides_document_every_area():
    areas = {shlex.split(command)[0] for _, command in documented_commands()}
    assert {"shards", "pipeline", "synth", "model", "train", "eval", "testset"} <= areas


@pytest.mark.parametrize("page, command", documented_commands())
def test_documented_command_parses(page, command):
    parser = build_parser()
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            args = parser.parse_args(shlex.split(command))
        except SystemExit:
            pytest.fail(f"{page}: `funfactory {command}` does not parse: {stderr.getvalue()}")
    assert getattr(args, "func", None) is not None, f"{page}: `funfactory {command}` runs nothing"
