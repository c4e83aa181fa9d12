"""Helpers for the training tests: shards of real TTS speech with known text, and a tiny model.

Imported by tests/test_loader.py and tests/test_training*.py (fixtures live in those files; the
`speech_clips` fixture of tests/conftest.py supplies the speech).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from funfactory.shards.keys import segment_key
from funfactory.shards.schema import new_meta
from funfactory.shards.writer import ShardWriter


def write_speech_shards(folder: Path, clips: list[tuple[str, np.ndarray]], n_samples: int,
                        per_shard: int, dataset: str = "speech", split: str = "train",
                        languages: tuple[str, ...] = ("en",), task: str = "asr",
                        seed: int = 0) -> list[str]:
    """`n_samples` samples cut from the clips at varied lengths (0.6-1.0 of each clip), with the
    clip's text; returns the keys written."""
    rng = np.random.default_rng(seed)
    keys = []
    with ShardWriter(folder, dataset, split, max_count=per_shard) as writer:
        for i in range(n_samples):
            text, audio = clips[i % len(clips)]
            take = audio[: int(len(audio) * rng.uniform(0.6, 1.0))] if task == "unlabelled" else audio
            key = segment_key(f"src{dataset}", i)
            writer.write(new_meta(key=key, text="" if task == "unlabelled" else text.lower(),
                                  language=languages[i % len(languages)],
                                  duration=len(take) / 16000, task=task, source_id=f"src{dataset}",
                                  uri=f"file:///{dataset}.wav", pipeline="test", version="0",
                                  config_sha256=""), take)
            keys.append(key)
    return keys


def varied_clips(clips: list[tuple[str, np.ndarray]], seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """The clips trimmed to varied lengths for bucketing tests (the text no longer matches the
    audio: for loader tests only)."""
    rng = np.random.default_rng(seed)
    return [(t, a[: max(1600, int(len(a) * rng.uniform(0.3, 1.0)))]) for t, a in clips]
