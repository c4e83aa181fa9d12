"""Helpers shared by the benchmarks: timing, rows, and real speech to measure on."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def best_of(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Fastest wall time of `repeats` calls (the least disturbed by a busy machine)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def row(benchmark: str, figure: str, value: float, anchor: str, anchor_value: float,
        unit: str = "") -> dict:
    ratio = value / anchor_value if anchor_value else float("nan")
    print(f"{benchmark:<16} {figure:<44} {value:>10.2f} {unit:<8} | anchor {anchor:<40} "
          f"{anchor_value:>10.2f}  ratio {ratio:.3f}", flush=True)
    return {"benchmark": benchmark, "figure": figure, "value": value, "unit": unit,
            "anchor": anchor, "anchor_value": anchor_value, "ratio": ratio}


def speech_clips(n: int, seconds: float = 5.0, seed: int = 0) -> list[np.ndarray]:
    """`n` clips of real TTS speech (hibari, resampled to 16 kHz), `seconds` long each."""
    import soxr
    from hibari.tts import Hibari

    voice = Hibari(threads=1)
    text = ("The quarterly budget review starts at nine tomorrow. Please send the deployment "
            "notes to the whole team before lunch. Our model reads audio shards from disk, "
            "and the stadium crowd made the recording hard to hear.")
    speech = soxr.resample(np.asarray(voice(text, seed=seed), dtype=np.float32),
                           voice.sample_rate, 16000)
    rng = np.random.default_rng(seed)
    length = int(seconds * 16000)
    speech = np.tile(speech, int(np.ceil(length * 2 / len(speech))) + 1)
    starts = rng.integers(0, len(speech) - length, size=n)
    return [np.round(speech[s:s + length] * 32767) / 32768 for s in starts]
