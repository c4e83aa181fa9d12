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


def tracked_text_files() -> list[Path]:
    import subprocess
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    return [ROOT / n for n in names if n.endswith((".py", ".md", ".sh", ".toml", ".yaml", ".cfg",
                                                   ".txt", ".in")) or n in ("Makefile",)]


def test_code_and_docs_cite_the_projects_own_pages():
    """The architecture page is the project's own (docs/architecture.md); no pointer leads to a
    page the repository does not hold or to the tracker's numbering, which readers cannot see."""
    missing_page = re.compile(r"\b(DESIGN|ASSETS|STYLE)" + r"\.md\b")
    tracker = re.compile(r"\bissues?\s*#?\d+", re.I)
    found = []
    for path in tracked_text_files():
        if not path.is_file() or path == Path(__file__).resolve():
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if missing_page.search(line) or tracker.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert found == []


def test_architecture_page_lists_the_contract_the_code_enforces():
    from funfactory.shards.index import INDEX_SCHEMA
    from funfactory.shards.schema import LINEAGE_FIELDS, REQUIRED, SOURCE_FIELDS, TASKS
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    names = [*INDEX_SCHEMA.names, *REQUIRED, *SOURCE_FIELDS, *LINEAGE_FIELDS, *TASKS]
    assert [n for n in names if f"`{n}`" not in page] == []
