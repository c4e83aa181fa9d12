"""Every job's sample lineage carries the package's own version (``funfactory.__version__``).

Lineage says which code made a sample; a version typed into one pipeline goes stale the day the
package's version moves. This reads the source of every area and checks each place that builds a
lineage (a ``pipeline=..., version=...`` call or a ``{"pipeline": ..., "version": ...}`` dict)."""

from __future__ import annotations

import ast
from pathlib import Path

import funfactory

ROOT = Path(__file__).resolve().parent.parent
AREAS = ("pipelines", "shards", "synth", "training", "eval", "model", "funfactory")
# every job that writes samples
JOBS = {"pipelines/label/sink.py", "pipelines/augment/augmenter.py",
        "pipelines/streaming/transforms.py", "pipelines/rl/pipeline.py",
        "pipelines/context/pipeline.py", "pipelines/codeswitch/pipeline.py",
        "pipelines/hotword/pipeline.py", "pipelines/testset.py", "pipelines/reference.py",
        "shards/interop.py"}
CONTRACT = "shards/schema.py"  # declares the lineage fields; its new_meta takes the caller's


def lineage_versions(tree: ast.AST):
    """(line, version expression) of each lineage built in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            keywords = {k.arg: k.value for k in node.keywords}
            if {"pipeline", "version"} <= set(keywords):
                yield node.lineno, keywords["version"]
        elif isinstance(node, ast.Dict):
            keys = {k.value: v for k, v in zip(node.keys, node.values)
                    if isinstance(k, ast.Constant)}
            if {"pipeline", "version"} <= set(keys):
                yield node.lineno, keys["version"]


def test_every_job_stamps_lineage_with_the_package_version():
    sites, wrong = set(), []
    for area in AREAS:
        for path in sorted((ROOT / area).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            if name == CONTRACT:
                continue
            for line, value in lineage_versions(ast.parse(path.read_text(), name)):
                sites.add(name)
                if not (isinstance(value, ast.Name) and value.id == "__version__"):
                    wrong.append(f"{name}:{line}: version={ast.unparse(value)}")
    assert wrong == [], "lineage versions not taken from funfactory.__version__"
    assert JOBS <= sites, f"no lineage found in {sorted(JOBS - sites)}"


def test_the_package_has_one_version():
    import importlib.metadata
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert importlib.metadata.version("funfactory") == funfactory.__version__
