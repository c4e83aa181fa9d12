"""Shard-to-shards jobs (augment, streaming) on the shared Beam infrastructure
(`funfactory.pipelines.common`).

The unit of resumable work is an input shard. `DeriveUnits` reads one, passes each sample to a
*deriver* (`derive(meta, audio) -> (derived samples, rejects)`) and emits the common element
stream: `("sample", (meta, audio))` per derived sample, `("reject", row)` per turned-away input,
and one `("unit", info)` whose info carries the input seconds, the number of input samples and
one report row per output sample. `run_shardwise` drives a job as the label pipeline does:
config-pinned work folder, waves of units through `WriteUnits` (per-unit part + completion
marker), then `pack_shards` into deterministic shards, the rejects table and the `RunReport`. A
job killed at any point and started again with the same config redoes at most one wave and then
writes the same shards as an uninterrupted run; every input sample ends in a shard or in the
rejects table, or was deliberately not selected (augment's `noisy_share` < 1).
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
from funfactory.pipelines.common.runner import beam_options

REPORT_DIR = "_reports"
WORK_DIR = "_work"


class Deriver(Protocol):
    def derive(self, meta: dict, audio: np.ndarray) -> tuple[list[Derived], list[Rejected]]: ...


def unit_id(url: str) -> str:
    """'speech-train-000003-1a2b3c4d': the shard's name (so units sort in input order) and a hash
    of its full URL (so equal names in different folders stay apart)."""
    stem = url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".tar")
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in stem)
    return f"{safe}-{hashlib.sha1(url.encode()).hexdigest()[:8]}"


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
        seconds_in, count, rows = 0.0, 0, []
        started = time.perf_counter()
        for sample in reader:
            count += 1
            seconds_in += sample.audio.size / 16000
            derived, rejected = self.deriver.derive(sample.meta, sample.audio)
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
                             "input_samples": count, "rows": rows,
                             "stage_seconds": {self.stage: time.perf_counter() - started}}


@dataclass
class ShardwiseResult:
    out_dir: Path
    rows: list[dict]
    rejects: list[dict]
    run_report: dict
    shards: list[str]
    #: the pipeline's own summary (augment: SNR statistics and report files)
    summary: dict = field(default_factory=dict)


def run_shardwise(name: str, urls: list[str], out_dir: str | Path, fn: DeriveUnits, *,
                  dataset: str, split: str, max_count: int, config_sha256: str,
                  units_per_wave: int = 8, options=None, restart: bool = False,
                  echo: Callable[[str], None] = print) -> ShardwiseResult:
    """Run (or resume) `fn` over every input shard, then pack, write rejects and the report."""
    from funfactory.pipelines.common.rejects import write_rejects
    from funfactory.pipelines.common.report import RunReport
    from funfactory.pipelines.common.sink import pack_shards
    from funfactory.pipelines.common.units import WorkDir, WriteUnits, done_units, read_manifests

    started = time.monotonic()
    out = Path(out_dir)
    work = WorkDir(out / WORK_DIR)
    work.pin(config_sha256, restart=restart)
    units = {unit_id(u): u for u in urls}
    done = done_units(work.path)
    todo = [(uid, url) for uid, url in sorted(units.items()) if uid not in done]
    echo(f"[{name}] {len(units)} input shards, {len(units) - len(todo)} already done")
    finished = len(units) - len(todo)
    for start in range(0, len(todo), max(1, units_per_wave)):
        wave = todo[start:start + max(1, units_per_wave)]
        with beam.Pipeline(options=options or beam_options()) as p:
            _ = (p | "InputShards" >> beam.Create(wave)
                   | "Derive" >> beam.ParDo(fn)
                   | "WriteUnits" >> WriteUnits(work.path, name, total=len(units),
                                                done_before=finished))
        finished += len(wave)
    shards = pack_shards(work.path, out, dataset, split, max_count=max_count, options=options,
                         units=set(units))
    manifests = [m for m in read_manifests(work.path) if m["unit"] in units]
    rejects = [row for m in manifests for row in m["rejects"]]
    write_rejects(rejects, out / REPORT_DIR / f"{name}-rejects.parquet")
    report = RunReport.build(name, manifests, time.monotonic() - started, len(shards))
    report.write(out / REPORT_DIR, out)
    echo(report.text())
    rows = [row for m in manifests for row in m["info"]["rows"]]
    return ShardwiseResult(out, rows, rejects, report.as_dict(), shards)
