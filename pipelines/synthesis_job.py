"""The driver shared by the synthesis pipelines (context, codeswitch, hotword).

One job = resumable units (`pipelines.common.units`) -> one Beam pipeline over the pending ones ->
deterministic shards (`pipelines.common.sink.pack_shards`) -> the run report, whose `extra` holds
the pipeline's yields summed from the units' manifests (so a resumed run reports the whole job,
on any runner). Per-unit yield counters travel in each unit's ``("unit", info)`` element under
``info["yields"]``.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Callable

WORK_DIR = "_work"
REPORT_DIR = "_reports"


def sum_yields(manifests: list[dict]) -> dict:
    total: Counter = Counter()
    for manifest in manifests:
        total.update(manifest["info"].get("yields", {}))
    return dict(sorted(total.items()))


def run_units_job(name: str, out_dir: str | Path, sha: str, unit_ids: list[str],
                  build: Callable, *, dataset: str, split: str, options=None,
                  restart: bool = False, max_count: int = 1000,
                  summarize: Callable[[dict], dict] | None = None) -> dict:
    """Run `build(pipeline, pending_unit_ids) -> PCollection[(unit, kind, payload)]` for the
    units not finished yet, pack shards and write the report. `sha` (the config hash, input
    included) pins the work folder. Returns the report as a dict."""
    import apache_beam as beam

    from funfactory.pipelines.common.report import RunReport
    from funfactory.pipelines.common.runner import beam_options
    from funfactory.pipelines.common.sink import pack_shards
    from funfactory.pipelines.common.units import WorkDir, WriteUnits, pending, read_manifests

    started = time.perf_counter()
    out = Path(out_dir)
    work = WorkDir(out / WORK_DIR)
    work.pin(sha, restart=restart)
    todo = pending(work.path, unit_ids)
    if todo:
        pipeline = beam.Pipeline(options=options or beam_options())
        items = build(pipeline, todo)
        _ = items | "WriteUnits" >> WriteUnits(work.path, name, len(unit_ids),
                                               len(unit_ids) - len(todo))
        pipeline.run().wait_until_finish()
    shards = pack_shards(work.path, out, dataset, split, max_count=max_count, options=options)
    manifests = read_manifests(work.path)
    yields = sum_yields(manifests)
    extra = {"config_sha256": sha, "yields": yields, "units_run_now": len(todo)}
    if summarize is not None:
        extra.update(summarize(yields))
    report = RunReport.build(name, manifests, wall_seconds=time.perf_counter() - started,
                             shards=len(shards), extra=extra)
    report.write(out / REPORT_DIR, out)
    print(report.text())
    return report.as_dict()


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
