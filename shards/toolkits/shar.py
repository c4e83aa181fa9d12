"""lhotse Shar (https://lhotse.readthedocs.io, "Lhotse Shar"): cuts in ``cuts.NNNNNN.jsonl.gz``
and their audio in ``recording.NNNNNN.tar``, written by lhotse's own ``SharWriter``.

Each sample becomes the cut :func:`funfactory.shards.interop.sample_cut` makes: one recording,
one supervision with text and language, and the whole sample JSON in the supervision's
``custom["funfactory"]``, so an import gives back the very samples. Audio is stored as FLAC; it
is on the 16-bit grid, so lhotse's re-encoding is lossless. Import reads with
``CutSet.from_shar`` and writes shards with :func:`funfactory.shards.interop.from_cutset`.
"""

from __future__ import annotations

from pathlib import Path

from funfactory.shards.interop import sample_cut
from funfactory.shards.toolkits.common import Exporter, flac_frames


class SharExporter(Exporter):
    def __init__(self, out_dir: Path, shard_size: int = 1000):
        from lhotse.shar import SharWriter

        super().__init__(out_dir)
        self.writer = SharWriter(str(self.out), fields={"recording": "flac"},
                                 shard_size=shard_size)
        self.writer.__enter__()

    @property
    def report_path(self) -> Path:
        return self.out.parent / f"{self.out.name}-export-report.json"

    def add(self, sample) -> None:
        flac_frames(sample)
        self.writer.write(sample_cut(sample))

    def close(self) -> list[Path]:
        self.writer.close()
        return sorted(self.out.glob("cuts.*.jsonl.gz")) + sorted(self.out.glob("recording.*.tar"))
