"""Runner option plumbing shared by every pipeline command.

``add_runner_arguments(parser)`` adds:

- ``--runner NAME`` (default ``DirectRunner``; ``DaskRunner`` is expanded to
  ``apache_beam.runners.dask.dask_runner.DaskRunner``; ``DataflowRunner``, ``FlinkRunner``,
  ``SparkRunner`` or a dotted class path pass through);
- ``--direct_num_workers N`` and ``--direct_running_mode in_memory|multi_threading|
  multi_processing`` (DirectRunner);
- ``--dask_address tcp://host:port`` (DaskRunner: the scheduler of a running
  ``distributed.LocalCluster`` or cluster; Beam's own flag is ``--dask_client_address``);

and every argument after ``--`` goes to Beam unchanged (``--temp_location``, ``--project``...).

``beam_options(runner=..., direct_num_workers=..., direct_running_mode=..., dask_address=...,
extra=[...])`` builds ``PipelineOptions``; ``runner_options_from_args(namespace)`` does the same
from parsed arguments. ``run_and_wait(pipeline)`` runs a pipeline to the end, returns its Beam
counters as ``{"namespace/name": value}`` (empty where the runner has no metrics, e.g. Dask) and
closes the Dask client the DaskRunner opened. ``pickle_library`` is cloudpickle, so DoFns defined anywhere ship to
workers.
"""

from __future__ import annotations

import argparse

from funfactory.errors import FunfactoryError

RUNNER_ALIASES = {"DaskRunner": "apache_beam.runners.dask.dask_runner.DaskRunner"}
RUNNING_MODES = ("in_memory", "multi_threading", "multi_processing")


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Beam runner")
    group.add_argument("--runner", default="DirectRunner",
                       help="Beam runner: DirectRunner (default), DaskRunner, DataflowRunner, "
                            "FlinkRunner, SparkRunner or a class path")
    group.add_argument("--direct_num_workers", type=int, default=1,
                       help="DirectRunner workers (0: one per core)")
    group.add_argument("--direct_running_mode", choices=RUNNING_MODES, default="in_memory")
    group.add_argument("--dask_address", default=None,
                       help="DaskRunner: scheduler address of a Dask cluster (tcp://...)")
    group.add_argument("beam_args", nargs=argparse.REMAINDER,
                       help="after '--': options passed to Beam unchanged")


def beam_args(runner: str = "DirectRunner", direct_num_workers: int = 1,
              direct_running_mode: str = "in_memory", dask_address: str | None = None,
              extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    if direct_running_mode not in RUNNING_MODES:
        raise FunfactoryError(f"--direct_running_mode {direct_running_mode!r}: use one of "
                              f"{RUNNING_MODES}")
    resolved = RUNNER_ALIASES.get(runner, runner)
    args = [f"--runner={resolved}", "--pickle_library=cloudpickle"]
    if resolved == "DirectRunner" or resolved.endswith(".DirectRunner"):
        args += [f"--direct_num_workers={direct_num_workers}",
                 f"--direct_running_mode={direct_running_mode}"]
    if dask_address:
        if "dask" not in resolved.lower():
            raise FunfactoryError("--dask_address needs --runner DaskRunner")
        args.append(f"--dask_client_address={dask_address}")
    extra = [a for a in extra if a != "--"]
    return args + list(extra)


def beam_options(**kwargs):
    from apache_beam.options.pipeline_options import PipelineOptions
    return PipelineOptions(beam_args(**kwargs))


def runner_options_from_args(ns: argparse.Namespace):
    return beam_options(runner=ns.runner, direct_num_workers=ns.direct_num_workers,
                        direct_running_mode=ns.direct_running_mode,
                        dask_address=ns.dask_address, extra=list(ns.beam_args or []))


def run_and_wait(pipeline) -> dict[str, int]:
    """Run ``pipeline``, wait for it, return its counters (module docstring)."""
    result = pipeline.run()
    try:
        result.wait_until_finish()
        try:
            query = result.metrics().query()
        except (NotImplementedError, AttributeError):
            return {}
        counters = {}
        for c in query.get("counters", []):
            value = c.committed if c.committed is not None else c.attempted
            counters[f"{c.key.metric.namespace}/{c.key.metric.name}"] = int(value or 0)
        return counters
    finally:
        client = getattr(result, "client", None)
        if client is not None:
            client.close()
