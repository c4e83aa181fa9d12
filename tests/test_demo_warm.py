"""The demo's background cache fill: one builder per entry whoever asks first, failures reported
and left to the stage, the background at low priority."""

import json
import os
import time
from functools import partial
from pathlib import Path

from funfactory.cache import file_lock
from funfactory.demo_warm import CacheWarmer


def build_entry(root: str, name: str, seconds: float = 0.0) -> Path:
    """A cache entry built the way funfactory's are: under a lock, published by one rename; the
    entry records who built it and at what nice value."""
    target = Path(root) / name
    if target.is_dir():
        return target
    with file_lock(Path(root) / f"{name}.lock"):
        if target.is_dir():
            return target
        time.sleep(seconds)
        partial_dir = Path(root) / f".{name}.{os.getpid()}.partial"
        partial_dir.mkdir()
        (partial_dir / "built-by.json").write_text(json.dumps({"pid": os.getpid(),
                                                              "nice": os.nice(0)}))
        os.replace(partial_dir, target)
    return target


def broken() -> None:
    raise RuntimeError("planted failure")


def jobs(root: str) -> list:
    return [("slow entry", partial(build_entry, root, "slow", 2.0)),
            ("broken entry", broken),
            ("fast entry", partial(build_entry, root, "fast"))]


def test_the_background_builds_each_entry_once_and_reports_failures(tmp_path):
    warmer = CacheWarmer(jobs, str(tmp_path))
    deadline = time.time() + 60
    while not (tmp_path / "slow.lock").exists() and time.time() < deadline:
        time.sleep(0.05)
    # the stage asks while the background holds the lock: it waits and gets the same entry
    entry = build_entry(str(tmp_path), "slow")
    built = json.loads((entry / "built-by.json").read_text())
    assert built["pid"] == warmer.process.pid != os.getpid()
    assert built["nice"] >= min(19, os.nice(0) + 10)  # 19 is the lowest priority
    failed = warmer.finish()
    assert [name for name, _ in failed] == ["broken entry"]
    assert "planted failure" in failed[0][1]
    # the job after the failure still ran; nothing half-built is left beside the entries
    assert json.loads((tmp_path / "fast" / "built-by.json").read_text())["pid"] == built["pid"]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) \
        == ["fast", "slow"]
