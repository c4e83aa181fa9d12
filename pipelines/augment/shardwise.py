"""Shard-to-shards jobs (augment, streaming, RL data) on the common executor
(`funfactory.pipelines.common.executor`).

The unit of resumable work is an input shard. `DeriveUnits`, the unit processor, reads one
(from any fsspec URL), passes each sample to a *deriver* (`derive(meta, audio) -> (derived
samples, rejects)`) and emits the common element stream: `("sample", (meta, audio))` per derived
sample, `("reject", row)` per turned-away input, and one `("unit", info)` whose info carries the
input seconds, the number of input samples (`inputs`), the keys of inputs that ended as neither
an output nor a reject (`lost`, which the run report lists as unaccounted: it must stay empty)
and one report row per output sample. `run_shardwise` runs the job with `run_job`: one Beam
pipeline over the pending input shards, each committed by its worker, shards packed
incrementally, the rejects table and the `RunReport`. A job killed at any point and started again
with the same config redoes only the input shards that had not committed, and writes the same
shards as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import apache_beam as beam
import numpy as np

from funfactory.pipelines.augment.samples import Derived, Rejected
from funfactory.pipelines.common.rejects import reject_row
from funfactory.shards import storage
from funfactory.shards.index import fragment_tar_sha256


class Deriver(Protocol):
    def derive(self, meta: dict, audio: np.ndarray) -> tuple[list[Derived], list[Rejected]]: ...


def unit_id(url: str) -> str:
    """'speech-train-000003-1a2b3c4d': the shard's name (so units sort in input order) and a hash
    of its full URL (so equal names in different folders stay apart) and of its content: the tar
    sha256 its index fragment records, or, for a shard without one, its size. An input shard
    rewritten under the same name (its job rerun with another config) is a new unit, so a resumed
    job never keeps what it derived from the old one."""
    stem = url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".tar")
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in stem)
    folder, name = url.rstrip("/").rsplit("/", 1) if "/" in url else (".", url)
    content = fragment_tar_sha256(folder, name) or f"{storage.size(url)} bytes"
    digest = hashlib.sha1("\n".join([url, content]).encode()).hexdigest()[:8]
    return f"{safe}-{digest}"


class DeriveUnits(beam.DoFn):
    """(unit id, input shard url) -> the common (unit, kind, payload) elements."""

    def __init__(self, stage: str, make_deriver: Callable[[], Deriver],
                 row_of: Callable[[dict], dict]):
        self.stage = stage
        self.make_deriver, self.row_of = make_deriver, row_of

    def setup(self):
        self.deriver = self.make_deriver()

    def process(self, element):
        from funfactory.shards.reader import ShardReader

        unit, url = element
        reader = ShardReader(url)
        seconds_in, count, rows, lost = 0.0, 0, [], []
        started = time.perf_counter()
        for sample in reader:
            count += 1
            seconds_in += sample.audio.size / 16000
            derived, rejected = self.deriver.derive(sample.meta, sample.audio)
            if not derived and not rejected:
                lost.append(sample.key)
            for item in derived:
                rows.append(self.row_of(item.meta))
                yield unit, "sample", (item.meta, item.audio)
            for r in rejected:
                beam.metrics.Metrics.counter(self.stage, f"rejected_{r.reason}").inc()
                yield unit, "reject", reject_row(unit=unit, stage=self.stage, reason=r.reason,
                                                 detail=r.detail, uri=url, key=r.key,
                                                 offset=sample.meta["source"]["offset"],
                                                 duration=sample.meta["duration"])
        for e in reader.error_log:
            yield unit, "reject", reject_row(unit=unit, stage="read", reason=e.reason,
                                             detail=e.detail, uri=e.shard, key=e.key)
        beam.metrics.Metrics.counter(self.stage, "input_samples").inc(count)
        yield unit, "unit", {"uri": url, "seconds_in": round(seconds_in, 4),
                             "inputs": count, "lost": lost, "rows": rows,
                             "stage_seconds": {self.stage: time.perf_counter() - started}}


@dataclass
class ShardwiseResult:
    out_dir: Path | str
    rows: list[dict]
    rejects: list[dict]
    run_report: dict
    shards: list[str]
    #: the pipeline's own summary (augment: SNR statistics and report files)
    summary: dict = field(default_factory=dict)


def run_shardwise(name: str, urls: list[str], out_dir, fn: DeriveUnits, *, dataset: str,
                  split: str, max_count: int, config_sha256: str, options=None,
                  restart: bool = False, echo: Callable[[str], None] = print,
                  units: dict[str, str] | None = None) -> ShardwiseResult:
    """Run (or resume) `fn` over every input shard with the common executor. `units` is the
    {unit id: url} map of `urls` where the caller already built it (each id reads its input's
    index fragment)."""
    from funfactory.pipelines.common.executor import Job, pending_inputs, run_job

    units = units if units is not None else {unit_id(u): u for u in urls}
    job = Job(name=name, out_dir=out_dir, config_sha256=config_sha256, unit_ids=list(units),
              processor=fn, inputs=pending_inputs(units), dataset=dataset, split=split,
              max_count=max_count)
    result = run_job(job, options, restart, echo)
    rows = [row for m in result.manifests for row in m["info"]["rows"]]
    return ShardwiseResult(storage.as_location(out_dir), rows, result.rejects,
                           result.report.as_dict(), result.pack.shards)
