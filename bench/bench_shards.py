"""Shard read and write throughput (docs/architecture.md, the shard contract).

Reading: our `ShardReader` (member checks, schema validation, FLAC decode) against plain
`webdataset` + soundfile decoding the same shards, in the same run; target within 10 %.
Writing: our `ShardWriter` (validation, FLAC encode, index) against soundfile FLAC encoding
alone, the unavoidable part of the work.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import soundfile as sf

from bench.common import best_of, row, speech_clips
from funfactory.shards.keys import segment_key
from funfactory.shards.reader import ShardReader, expand_urls
from funfactory.shards.schema import new_meta
from funfactory.shards.writer import ShardWriter

N_CLIPS = 300


def _write(folder: Path, clips) -> None:
    with ShardWriter(folder, "bench", "train", max_count=100) as writer:
        for i, audio in enumerate(clips):
            writer.write(new_meta(key=segment_key("srcbench", i), text="bench clip",
                                  language="en", duration=len(audio) / 16000,
                                  source_id="srcbench", uri="file:///bench.wav",
                                  pipeline="bench", version="0", config_sha256=""), audio)


def _read_ours(folder: Path) -> int:
    return sum(1 for _ in ShardReader(folder))


def _read_webdataset(folder: Path) -> int:
    import webdataset as wds

    n = 0
    for sample in wds.WebDataset(expand_urls(folder), shardshuffle=False):
        sf.read(io.BytesIO(sample["flac"]), dtype="float32")
        n += 1
    return n


def main() -> list[dict]:
    import torch

    torch.set_num_threads(1)
    clips = speech_clips(N_CLIPS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "shards"
        t_write = best_of(lambda: _write(folder, clips), repeats=2)

        def encode_only():
            for audio in clips:
                sf.write(io.BytesIO(), audio, 16000, format="FLAC", subtype="PCM_16")
        t_encode = best_of(encode_only, repeats=2)
        assert _read_ours(folder) == N_CLIPS == _read_webdataset(folder)
        # Interleaved, best of five each: a busy machine slows both alike.
        t_ours, t_wds = float("inf"), float("inf")
        for _ in range(5):
            t_ours = min(t_ours, best_of(lambda: _read_ours(folder), repeats=1))
            t_wds = min(t_wds, best_of(lambda: _read_webdataset(folder), repeats=1))
    rows.append(row("shards", "read: ShardReader 5 s clips/s (1 core)", N_CLIPS / t_ours,
                    "webdataset + soundfile clips/s", N_CLIPS / t_wds, "clips/s"))
    rows.append(row("shards", "write: ShardWriter 5 s clips/s (1 core)", N_CLIPS / t_write,
                    "soundfile FLAC encode only clips/s", N_CLIPS / t_encode, "clips/s"))
    return rows


if __name__ == "__main__":
    main()
