"""Where funfactory keeps what it builds once (assembled models, converted weights, corpora), and
a cross-process lock for building it. Every area uses these, so they live in the package itself."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def cache_root() -> Path:
    """$FUNFACTORY_CACHE, else ~/.cache/funfactory: where assembled models and corpora live."""
    root = os.environ.get("FUNFACTORY_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "funfactory")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock held across processes while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
