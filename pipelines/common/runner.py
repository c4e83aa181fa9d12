"""Runner option plumbing shared by every pipeline command.

``add_runner_arguments(parser)`` adds:

- ``--runner NAME`` (default ``DirectRunner``, run as its in-process FnApiRunner engine without
  the Prism download attempt; ``DaskRunner`` is expanded to
  ``apache_beam.runners.dask.dask_runner.DaskRunner``; ``DataflowRunner``, ``FlinkRunner``,
  ``SparkRunner`` or a dotted class path pass through);
- ``--direct_num_workers N`` and ``--direct_running_mode in_memory|multi_threading|
  multi_processing`` (DirectRunner);
- ``--dask_address tcp://host:port`` (DaskRunner: the scheduler of a running
  ``distributed.LocalCluster`` or cluster; Beam's own flag is ``--dask_client_address``);

and every argument after ``--`` goes to Beam unchanged (``--temp_location``, ``--project``...).

argparse hands *every* word after a command's last positional to that pass-through (it is an
``argparse.REMAINDER``), so ``run IN OUT --set a=b -- --temp_location=x`` would send ``--set``
to Beam. ``reparse_trailing_options(args, parser, positionals)`` parses the words before ``--``
again as the command's own options (commands call it first in their handler);
``runner_options_from_args`` refuses options that look like a command's own (``--set``,
``--config``, ``--restart``, the runner flags) among the Beam arguments instead of dropping them.

``beam_options(runner=..., direct_num_workers=..., direct_running_mode=..., dask_address=...,
extra=[...])`` builds ``PipelineOptions``; ``runner_options_from_args(namespace)`` does the same
from parsed arguments; ``runner_of(options)`` names their runner and ``one_local_worker(options)``
tells whether they run one in-process worker, ``decoder_threads(options)`` how many threads each
worker's decoder may take. ``run_and_wait(pipeline)`` runs a pipeline to the
end, returns its Beam counters as ``{"namespace/name": value}`` (empty where the runner has no
metrics, e.g. Dask) and closes the Dask client the DaskRunner opened. ``pickle_library`` is
cloudpickle, so DoFns defined anywhere ship to workers.
"""

from __future__ import annotations

import argparse

from funfactory.errors import FunfactoryError

# Beam's DirectRunner first tries to download the Prism runner binary from the network (and
# falls back when that fails); offline, that is a run-time download attempt on every run. Its
# batch engine, the FnApiRunner, is what it falls back to: we name that directly.
FN_API_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
RUNNER_ALIASES = {"DaskRunner": "apache_beam.runners.dask.dask_runner.DaskRunner",
                  "DirectRunner": FN_API_RUNNER}
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
    if resolved in (FN_API_RUNNER, "DirectRunner") or resolved.endswith(".DirectRunner"):
        args += [f"--direct_num_workers={direct_num_workers}",
                 f"--direct_running_mode={direct_running_mode}"]
    if dask_address:
        if "dask" not in resolved.lower():
            raise FunfactoryError("--dask_address needs --runner DaskRunner")
        args.append(f"--dask_client_address={dask_address}")
    extra = [a for a in extra if a != "--"]
    return args + list(extra)


def one_local_worker(options) -> bool:
    """Whether ``options`` run the pipeline on one in-process worker (the DirectRunner's
    FnApiRunner, one worker, in memory): nothing to spread work over."""
    if options is None:
        return False
    from apache_beam.options.pipeline_options import DirectOptions

    runner = runner_of(options)
    direct = options.view_as(DirectOptions)
    return (runner in (FN_API_RUNNER, "DirectRunner") or runner.endswith(".DirectRunner")) \
        and direct.direct_num_workers == 1 \
        and direct.direct_running_mode in (None, "in_memory")


def decoder_threads(options) -> int:
    """Intra-op threads for each worker's decoder: `FUNFACTORY_ASR_THREADS` where set; else every
    core this process may use when ``options`` run one in-process worker (no other worker shares
    them), and one a worker otherwise (workers are then the unit of parallelism)."""
    import os

    from funfactory.asr.base import cpu_threads

    return cpu_threads(len(os.sched_getaffinity(0)) if one_local_worker(options) else 1)


def runner_of(options) -> str:
    """The runner named in ``options`` (a view of its options, not ``get_all_options``, which
    parses every registered option class again: a few ms each time a job is started)."""
    from apache_beam.options.pipeline_options import StandardOptions

    return str(options.view_as(StandardOptions).runner or "")


def beam_options(**kwargs):
    from apache_beam.options.pipeline_options import PipelineOptions
    return PipelineOptions(beam_args(**kwargs))


OWN_OPTIONS = ("--set", "--config", "--restart", "--runner", "--direct_num_workers",
               "--direct_running_mode", "--dask_address")


def reparse_trailing_options(args: argparse.Namespace, parser: argparse.ArgumentParser,
                             positionals: tuple[str, ...]) -> argparse.Namespace:
    """Parse own options written after the positionals (module docstring); list options
    (``--set``) given on both sides are joined."""
    rest = list(args.beam_args or [])
    cut = rest.index("--") if "--" in rest else len(rest)
    own, passthrough = rest[:cut], rest[cut + 1:]
    if not own:
        args.beam_args = passthrough
        return args
    fixed = parser.parse_args([*own, *[str(getattr(args, name)) for name in positionals],
                               "--", *passthrough])
    for name, value in vars(fixed).items():
        before = getattr(args, name, None)
        if isinstance(value, list) and isinstance(before, list) and name != "beam_args":
            value = before + value
        elif value == parser.get_default(name):
            continue  # not given after the positionals: keep what came before them
        setattr(args, name, value)
    args.beam_args = [a for a in fixed.beam_args if a != "--"]
    return args


def runner_options_from_args(ns: argparse.Namespace):
    extra = [a for a in (ns.beam_args or []) if a != "--"]
    misplaced = [a for a in extra if a.split("=", 1)[0] in OWN_OPTIONS]
    if misplaced:
        raise FunfactoryError(f"options {misplaced} would go to Beam: write them before the "
                              "input/output paths, or call reparse_trailing_options first")
    return beam_options(runner=ns.runner, direct_num_workers=ns.direct_num_workers,
                        direct_running_mode=ns.direct_running_mode,
                        dask_address=ns.dask_address, extra=extra)


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
