"""Export throughput per toolkit format (Fun-ASR JSONL, NeMo tarred, lhotse Shar, Kaldi) against
plain tar iteration over the same shards (reading every member's bytes with `tarfile`, nothing
decoded), measured in the same run: the ratio is the share of raw read speed an export keeps.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path

from bench.common import best_of, row, speech_clips
from funfactory.shards.keys import segment_key
from funfactory.shards.schema import new_meta
from funfactory.shards.toolkits import FORMATS
from funfactory.shards.toolkits.common import export_shards
from funfactory.shards.writer import ShardWriter

N_CLIPS = 200


def _iterate_tars(folder: Path) -> int:
    n = 0
    for shard in sorted(folder.glob("*.tar")):
        with tarfile.open(shard, "r|") as tar:
            for member in tar:
                tar.extractfile(member).read()
                n += member.name.endswith(".flac")
    return n


def main() -> list[dict]:
    clips = speech_clips(N_CLIPS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        shards = Path(tmp) / "shards"
        with ShardWriter(shards, "bench", "train", max_count=100) as writer:
            for i, audio in enumerate(clips):
                writer.write(new_meta(key=segment_key("srcbench", i), text="bench clip number "
                                      f"{i}", language="en", duration=len(audio) / 16000,
                                      source_id="srcbench", uri="file:///bench.wav",
                                      pipeline="bench", version="0", config_sha256=""), audio)
        assert _iterate_tars(shards) == N_CLIPS
        t_tar = best_of(lambda: _iterate_tars(shards), repeats=3)
        for fmt in FORMATS:
            out = Path(tmp) / fmt

            def run():
                shutil.rmtree(out, ignore_errors=True)
                report = export_shards(shards, out, fmt)
                assert report.samples == N_CLIPS, report.text()
            t_export = best_of(run, repeats=2)
            rows.append(row("export", f"{fmt}: 5 s clips/s (1 core)", N_CLIPS / t_export,
                            "plain tar iteration clips/s", N_CLIPS / t_tar, "clips/s"))
    return rows


if __name__ == "__main__":
    main()
