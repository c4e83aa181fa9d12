"""Shared Beam infrastructure for every funfactory pipeline (label, augment, synthesis, ...).

Modules and their API (details in each module's docstring):

- :mod:`.runner`: ``add_runner_arguments(parser)``, ``beam_options(args_or_kwargs...)``,
  ``runner_options_from_args(ns, extra)`` -- DirectRunner by default, DaskRunner by name,
  any other Beam flag passed through.
- :mod:`.units`: the unit of resumable work (a source file, an input shard...). Elements are
  ``(unit_id, kind, payload)`` tuples, kind one of ``"sample"`` (payload ``(meta, audio)``),
  ``"reject"`` (a rejects row) and ``"unit"`` (the one summary per unit). ``WriteUnits(work_dir)``
  stages samples, groups by unit and writes ``parts/{unit}.tar`` plus the completion marker
  ``parts/{unit}.json``; ``done_units``/``pending`` drive resume; ``WorkDir`` pins the config.
- :mod:`.sink`: ``pack_shards(work_dir, out_dir, dataset, split, ...)``: every completed unit's
  samples into deterministic WebDataset shards (key order, atomic), index merged at the end.
- :mod:`.rejects`: ``reject_row(...)``, ``REJECTS_SCHEMA``, ``write_rejects(rows, path)``.
- :mod:`.report`: ``RunReport`` (counts, hours in/out, rejects by reason, time per stage,
  JSON + printed + duration histogram PNG) and ``Progress`` (lines while it runs).
- :mod:`.atomic`: ``write_bytes_atomic``, ``write_json_atomic``.
"""
