"""`funfactory shards stats`: hours and counts by split, task and language, from the index alone,
with a duration histogram PNG."""

from __future__ import annotations

import collections
import io
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from funfactory.shards import storage
from funfactory.shards.index import INDEX_SCHEMA, find_indexes
from funfactory.shards.keys import parse_shard_name


@dataclass
class Stats:
    samples: int
    hours: float
    by: dict[str, dict[str, tuple[int, float]]]  # dimension -> value -> (count, hours)
    durations: list[float]

    def table(self) -> str:
        lines = [f"{self.samples} samples, {self.hours:.3f} h"]
        for dim, values in self.by.items():
            lines.append(f"  by {dim}:")
            for value, (count, hours) in sorted(values.items()):
                lines.append(f"    {value or '-':<14} {count:>8} samples {hours:>10.4f} h")
        return "\n".join(lines)


def compute_stats(folder: str | Path) -> Stats:
    by: dict[str, dict[str, list]] = {d: collections.defaultdict(lambda: [0, 0.0])
                                      for d in ("split", "task", "language")}
    durations: list[float] = []
    for path in find_indexes(folder):
        with storage.open_read(path) as f:
            table = pq.read_table(f, schema=INDEX_SCHEMA, columns=["shard", "duration", "task",
                                                                "language"])
        for row in table.to_pylist():
            parsed = parse_shard_name(row["shard"])
            values = {"split": parsed[1] if parsed else "?", "task": row["task"],
                      "language": row["language"]}
            for dim, value in values.items():
                by[dim][value][0] += 1
                by[dim][value][1] += row["duration"] / 3600
            durations.append(row["duration"])
    return Stats(samples=len(durations), hours=sum(durations) / 3600,
                 by={d: {k: (c, h) for k, (c, h) in v.items()} for d, v in by.items()},
                 durations=durations)


def duration_histogram(stats: Stats, png: str | Path, title: str = "segment durations") -> Path | str:
    import numpy as np
    from matplotlib.figure import Figure

    # every run report draws this, so it is kept cheap: a bare Agg figure with fixed margins (no
    # pyplot figure manager, no tight_layout draw pass), the bars as one filled step artist
    # rather than one patch per bin, and the title at a fixed height (no measuring of the axes
    # to place it)
    fig = Figure(figsize=(6, 3.5))
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.15, top=0.9)
    ax = fig.subplots()
    counts, edges = np.histogram(stats.durations, bins=min(40, max(5, len(stats.durations) // 3)))
    ax.stairs(counts, edges, fill=True, color="#3b6ea5")
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("samples")
    ax.set_title(f"{title}: {stats.samples} samples, {stats.hours:.2f} h", y=1.0, pad=6)
    image = io.BytesIO()
    fig.savefig(image, dpi=100, format="png")
    return storage.write_bytes(png, image.getvalue())
