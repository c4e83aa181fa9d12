"""The synthesis pipelines' (context, codeswitch, hotword) use of the common executor.

One job = resumable units (`pipelines.common.units`) -> one Beam pipeline over the pending ones,
each committed by its worker -> shards packed incrementally (`pipelines.common.sink`) -> the run
report (`pipelines.common.executor.run_job`), whose `extra` holds
the pipeline's yields summed from the units' manifests (so a resumed run reports the whole job,
on any runner). Per-unit yield counters travel in each unit's ``("unit", info)`` element under
``info["yields"]``.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable


def sum_yields(manifests: list[dict]) -> dict:
    total: Counter = Counter()
    for manifest in manifests:
        total.update(manifest["info"].get("yields", {}))
    return dict(sorted(total.items()))


def run_units_job(name: str, out_dir, sha: str, unit_ids: list[str], processor, inputs: Callable,
                  *, dataset: str, split: str, options=None, restart: bool = False,
                  max_count: int = 1000,
                  summarize: Callable[[dict], dict] | None = None) -> dict:
    """Run `processor` over the units not finished yet with the common executor
    (`inputs(pipeline, pending unit ids) -> (PCollection[(unit, work)], side inputs)`), pack
    shards and write the report with the summed yields. `sha` (the config hash, input included)
    pins the work folder. Returns the report as a dict."""
    from funfactory.pipelines.common.executor import Job, run_job
    from funfactory.pipelines.common.report import RunReport

    def report(manifests, wall, shards, counters):
        yields = sum_yields(manifests)
        extra = {"yields": yields}
        if summarize is not None:
            extra.update(summarize(yields))
        return RunReport.build(name, manifests, wall_seconds=wall, shards=shards, extra=extra)

    job = Job(name=name, out_dir=out_dir, config_sha256=sha, unit_ids=list(unit_ids),
              processor=processor, inputs=inputs, dataset=dataset, split=split,
              max_count=max_count, report=report)
    return run_job(job, options, restart).report.as_dict()


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
