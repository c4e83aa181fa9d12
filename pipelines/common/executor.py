"""The one executor of every funfactory job (docs/architecture.md, executor).

A job is a set of units with deterministic ids and a *unit processor* (a DoFn that handles one
whole unit, :mod:`.units`). :func:`run_job` drives it the same way for label, augment, streaming,
RL data, context, code-switch and hotword:

1. pins the work folder to the config hash (``--restart`` clears it and this split's shards);
2. runs **one** Beam pipeline over every pending unit: the job's input elements ``(unit, work)``
   (by default ``Create`` of the pending units, reshuffled so a distributed runner spreads them,
   except on one in-process worker;
   a job may build its own graph and side inputs) into :class:`.units.CommitUnit`, so the worker
   that finishes a unit commits it (part, then manifest). On the DaskRunner each pending unit
   is its own partition unless ``--dask_npartitions`` says otherwise;
3. packs final shards from the committed parts, incrementally (:mod:`.sink`), and removes the
   parts it packed;
4. writes the rejects table ``{name}-rejects.parquet``, and the run report (JSON, printed, and
   the duration histogram) with the Beam counters and ``units_run_now``.

Work folder, shards, index and reports may live on any fsspec URL
(:mod:`funfactory.shards.storage`). A job killed at any point and started again with the same
config redoes only the units that had no manifest, and its shards equal an uninterrupted run's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import apache_beam as beam

from funfactory.pipelines.common.rejects import write_rejects
from funfactory.pipelines.common.report import RunReport
from funfactory.pipelines.common.runner import (beam_options, one_local_worker, run_and_wait,
                                                runner_of)
from funfactory.pipelines.common.sink import PackResult, pack_shards, remove_split
from funfactory.pipelines.common.units import CommitUnit, WorkDir, done_units, read_manifests
from funfactory.shards import storage
from funfactory.shards.writer import DEFAULT_MAX_BYTES, DEFAULT_MAX_COUNT

WORK_DIR = "_work"
REPORT_DIR = "_reports"


def pending_inputs(work: dict[str, Any]) -> Callable:
    """The default graph: ``Create`` of the pending ``(unit, work[unit])``, reshuffled so that a
    distributed or multi-worker runner spreads the units. On one in-process worker the reshuffle
    spreads nothing and was a fixed cost of every run (an extra stage and its shuffle), so it is
    left out there."""

    def build(pipeline, todo: list[str]):
        items = pipeline | "Units" >> beam.Create([(unit, work[unit]) for unit in todo],
                                                  reshuffle=False)
        if not one_local_worker(pipeline.options):
            items = items | "Spread" >> beam.Reshuffle()
        return items, ()

    return build


@dataclass
class Job:
    name: str
    out_dir: Any
    config_sha256: str
    unit_ids: list[str]
    processor: beam.DoFn
    #: ``build(pipeline, pending unit ids) -> (PCollection[(unit, work)], side inputs)``
    inputs: Callable
    dataset: str
    split: str
    max_count: int = DEFAULT_MAX_COUNT
    max_bytes: int = DEFAULT_MAX_BYTES
    work_dir: Any = None
    report_dir: Any = None
    #: ``report(manifests, wall_seconds, shards, counters) -> RunReport``; default RunReport.build
    report: Callable | None = None

    @property
    def work(self) -> str:
        return storage.url_of(self.work_dir or storage.join(self.out_dir, WORK_DIR))

    @property
    def reports(self) -> str:
        return storage.url_of(self.report_dir or storage.join(self.out_dir, REPORT_DIR))


@dataclass
class JobResult:
    report: RunReport
    manifests: list[dict]
    rejects: list[dict]
    pack: PackResult
    counters: dict = field(default_factory=dict)
    units_run_now: int = 0


def _spread_dask_partitions(options, units: int) -> None:
    if "dask" not in runner_of(options).lower():
        return
    from apache_beam.runners.dask.dask_runner import DaskOptions

    dask = options.view_as(DaskOptions)
    if not dask.npartitions and not dask.partition_size:
        dask.npartitions = max(1, units)


def run_job(job: Job, options=None, restart: bool = False, echo=print) -> JobResult:
    """Run (or resume) ``job`` (module docstring)."""
    started = time.monotonic()
    work = WorkDir(job.work)
    if restart:
        remove_split(job.out_dir, job.dataset, job.split)
    work.pin(job.config_sha256, restart=restart)
    # a killed run's writers leave temporary files; the units they wrote are redone
    stale = storage.remove_partials(work.path) + storage.remove_partials(job.out_dir)
    units = sorted(job.unit_ids)
    done = done_units(work.path) & set(units)
    todo = [u for u in units if u not in done]
    echo(f"[{job.name}] {len(units)} units, {len(done)} already done, {len(todo)} to run "
         f"(config {job.config_sha256[:12]})")
    counters: dict[str, int] = {}
    if todo:
        options = options or beam_options()
        _spread_dask_partitions(options, len(todo))
        pipeline = beam.Pipeline(options=options)
        items, side = job.inputs(pipeline, todo)
        _ = items | "CommitUnits" >> beam.ParDo(
            CommitUnit(job.processor, work.path, job.name, len(units), len(done)), *side)
        counters = run_and_wait(pipeline)
    manifests = read_manifests(work.path, units)
    pack = pack_shards(work.path, job.out_dir, job.dataset, job.split, units, manifests,
                       max_count=job.max_count, max_bytes=job.max_bytes)
    rejects = [row for m in manifests for row in m["rejects"]]
    write_rejects(rejects, storage.join(job.reports, f"{job.name}-rejects.parquet"))
    wall = time.monotonic() - started
    if job.report is not None:
        report = job.report(manifests, wall, len(pack.shards), counters)
    else:
        report = RunReport.build(job.name, manifests, wall_seconds=wall, shards=len(pack.shards))
    report.extra.setdefault("beam_counters", dict(sorted(counters.items())))
    report.extra.update({"config_sha256": job.config_sha256, "units_run_now": len(todo),
                         "partials_removed": stale,
                         "shards_written_now": len(pack.written),
                         "parts_removed_now": pack.parts_removed})
    report.write(job.reports, job.out_dir)
    echo(report.text())
    return JobResult(report, manifests, rejects, pack, counters, len(todo))


class Chain(beam.DoFn):
    """Steps written as DoFns, run one after the other inside one unit processor: each output of
    a step goes through the next at once (depth first), so a whole unit is processed, and
    committed, by the worker that holds it. Steps are set up and torn down with the chain."""

    def __init__(self, steps: list[beam.DoFn]):
        self.steps = list(steps)

    def setup(self):
        for step in self.steps:
            step.setup()

    def teardown(self):
        for step in self.steps:
            step.teardown()

    def _through(self, index: int, element):
        if index == len(self.steps):
            yield element
            return
        for out in self.steps[index].process(element) or ():
            yield from self._through(index + 1, out)

    def process(self, element):
        yield from self._through(0, element)
