"""Per-process caches for heavy objects (models) used by DoFns.

``DoFn.setup`` runs once per DoFn instance; Beam runners may make many instances per worker
process (the DaskRunner even calls ``setup`` once per partition). ``worker_cached(key, build)``
returns the object built once per process for ``key``, so a model loads once per worker however
the runner schedules setups. Objects must be safe to share between the DoFn instances of one
process (the runners here run one bundle per thread; set ``--direct_num_workers`` with
``multi_processing`` for parallel CPU inference).
"""

from __future__ import annotations

import threading
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")

_CACHE: dict[Hashable, object] = {}
_LOCK = threading.Lock()


def worker_cached(key: Hashable, build: Callable[[], T]) -> T:
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = build()
        return _CACHE[key]  # type: ignore[return-value]
