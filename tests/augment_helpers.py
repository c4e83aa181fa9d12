"""Helpers for the augment, streaming and online-augmentation tests: labelled shards of real TTS
speech (hibari, the packaged English voice) written with the shard writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from funfactory.shards.keys import segment_key, source_id
from funfactory.shards.schema import new_meta
from funfactory.shards.writer import ShardWriter


def labelled_meta(text: str, audio: np.ndarray, index: int, uri: str = "tts://hibari-en") -> dict:
    src = source_id(uri)
    return new_meta(key=segment_key(src, index), text=text, language="en",
                    duration=len(audio) / 16000, source_id=src, uri=uri, offset=0.0,
                    pipeline="label", version="0.1.0", config_sha256="0" * 64)


def write_labelled_shards(folder: Path, clips: list[tuple[str, np.ndarray]], copies: int = 1,
                          max_count: int = 4, dataset: str = "speech") -> Path:
    """`copies` x `clips` as labelled `asr` samples in shards of `max_count` samples."""
    with ShardWriter(folder, dataset, "train", max_count=max_count) as writer:
        for i in range(copies * len(clips)):
            text, audio = clips[i % len(clips)]
            writer.write(labelled_meta(text, audio, i), audio)
    return folder
