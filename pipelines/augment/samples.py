"""What a per-sample step returns: derived samples to write and inputs it turned away."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Derived:
    meta: dict
    audio: np.ndarray


@dataclass
class Rejected:
    key: str
    reason: str
    detail: str
