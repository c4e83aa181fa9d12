"""`funfactory shards inspect KEY`: one sample's JSON and audio summary, found through the index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from funfactory.errors import FunfactoryError
from funfactory.shards.audio import decode_flac
from funfactory.shards.index import read_index
from funfactory.shards.reader import read_member


def find_sample(folder: str | Path, key: str) -> tuple[dict, np.ndarray, dict]:
    """(meta, audio, index row) of `key` by random access into its shard."""
    table = read_index(folder)
    rows = table.filter(pc.equal(table["key"], key)).to_pylist()
    if not rows:
        raise FunfactoryError(f"no sample with key {key!r} in the index of {folder}")
    row = rows[0]
    shard = Path(folder) / row["shard"]
    meta = json.loads(read_member(shard, row["json_offset"], row["json_size"]))
    audio, _ = decode_flac(read_member(shard, row["audio_offset"], row["audio_size"]))
    return meta, audio, row


def describe(meta: dict, audio: np.ndarray, row: dict) -> str:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) if audio.size else 0.0
    rms_db = 20 * np.log10(max(rms, 1e-10))
    return (json.dumps(meta, ensure_ascii=False, indent=2)
            + f"\n-- shard {row['shard']} | {len(audio) / 16000:.3f} s | peak {peak:.3f} "
              f"| rms {rms_db:.1f} dBFS | sha256 {row['audio_sha256'][:16]}")
