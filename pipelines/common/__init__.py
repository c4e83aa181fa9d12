"""Shared Beam infrastructure for every funfactory job (label, augment, streaming, RL data,
context, code-switch, hotword).

Modules and their API (details in each module's docstring):

- :mod:`.executor`: ``Job`` and ``run_job(job, options, restart)``, the one driver: one Beam
  pipeline over the pending units, each committed by its worker, then incremental packing, the
  rejects table and the run report; ``pending_inputs(work)`` (the default input graph) and
  ``Chain(steps)`` (DoFn steps run one after another inside one unit processor).
- :mod:`.units`: the unit of resumable work. A unit processor yields ``(unit_id, kind,
  payload)`` tuples, kind one of ``"sample"`` (payload ``(meta, audio)``), ``"reject"`` (a
  rejects row) and ``"unit"`` (the one summary per unit). ``CommitUnit`` streams a unit's samples
  into ``parts/{unit}.tar`` and writes its manifest ``parts/{unit}.json`` last;
  ``done_units``/``pending`` drive resume; ``WorkDir`` pins the config.
- :mod:`.sink`: ``pack_shards(...)``: the committed units' samples into deterministic WebDataset
  shards, only the shards whose content can no longer change, parts removed once packed.
- :mod:`.runner`: ``add_runner_arguments(parser)``, ``beam_options(...)``,
  ``runner_options_from_args(ns)``, ``run_and_wait(pipeline)``: DirectRunner by default,
  DaskRunner by name, any other Beam flag passed through.
- :mod:`.rejects`: ``reject_row(...)``, ``REJECTS_SCHEMA``, ``write_rejects(rows, path)``.
- :mod:`.report`: ``RunReport`` (counts, hours in/out, rejects by reason, time per stage,
  unaccounted units, JSON + printed + duration histogram PNG).
- :mod:`.workers`: ``worker_cached(key, build)``, heavy objects once per worker process.

Every path may be a local path or an fsspec URL (:mod:`funfactory.shards.storage`).
"""
