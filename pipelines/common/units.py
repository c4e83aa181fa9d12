"""Resumable units of work, committed by the worker that finishes them (docs/architecture.md,
executor).

A job splits its input into *units* with deterministic ids (the label job: one source recording;
augment, streaming, RL: one input shard; the synthesis jobs: a group of utterances or terms). A
*unit processor* is a DoFn whose ``process((unit, work), *side_inputs)`` handles one whole unit
and yields ``(unit, kind, payload)`` tuples:

- ``("sample", (meta, audio[, stage_seconds]))``: a finished sample; ``meta`` a schema-v1 dict
  (``funfactory.shards.schema.new_meta``), ``audio`` 16 kHz mono float32 (or int16);
- ``("reject", row)``: a :func:`funfactory.pipelines.common.rejects.reject_row` dict, optionally
  with a ``"stage_seconds"`` key (time spent on the rejected item, kept out of the table);
- ``("unit", info)``: exactly one per unit: at least ``uri`` and ``seconds_in``; optionally
  ``stage_seconds``, ``segments`` (items the unit was cut into: each must end as a sample or a
  reject with a key) or ``inputs`` and ``lost`` (derived jobs: input samples, and the keys of
  those that ended as neither an output nor a reject).

:class:`CommitUnit` wraps a processor. In the worker that runs the unit, it streams each sample
into the unit's part ``{work}/parts/{unit}.tar`` as it arrives (FLAC encoded there; never a whole
tar in memory), publishes the part when the unit ends, and then writes the manifest
``{work}/parts/{unit}.json``, the unit's completion marker, last: ``{"unit", "info", "samples":
[{"key", "duration", "json_offset", "json_bytes", "flac_offset", "flac_bytes"}], "rejects",
"stage_seconds", "part": {"size"} | null}``. The part is not hashed: it lives until packed, which
reads it by the manifest's offsets and checks each length, and the shard it goes into carries its
sha256 in its index fragment. A runner that retries a bundle (a lost worker, a failed bundle)
rewrites the same names with the same bytes: no duplicates. The work folder may be any fsspec URL
(:mod:`funfactory.shards.storage`).

Resume: :func:`done_units` lists units with a manifest; the driver runs only the others.
``WorkDir(url).pin(config_sha256)`` refuses to resume a work folder made with another config.
"""

from __future__ import annotations

import json
import sys
import tarfile
import time
from typing import Iterable

import apache_beam as beam
import numpy as np

from funfactory.errors import FunfactoryError
from funfactory.shards import storage
from funfactory.shards.audio import encode_flac
from funfactory.shards.schema import check_meta
from funfactory.shards.writer import add_member

PARTS = "parts"


class WorkDir:
    """The private folder of one job (local path or URL): parts, manifests, the pinned config."""

    def __init__(self, location):
        self.path = storage.url_of(location)

    @property
    def parts(self) -> str:
        return storage.join(self.path, PARTS)

    def pin(self, config_sha256: str, restart: bool = False) -> bool:
        """Record the config hash; refuse a resume under a different config unless ``restart``
        (which clears the work folder). Returns whether finished work was discarded."""
        stamp = storage.join(self.path, "config.sha256")
        cleared = False
        if storage.exists(stamp):
            old = storage.read_bytes(stamp).decode().strip()
            if old != config_sha256 and not restart:
                raise FunfactoryError(
                    f"work folder {self.path} was started with config {old[:12]}, this run "
                    f"has {config_sha256[:12]}: resume with the same config, or pass "
                    "--restart to discard the finished work")
        if restart and storage.exists(self.path):
            storage.remove_tree(self.path)
            cleared = True
        storage.makedirs(self.parts)
        storage.write_bytes(stamp, config_sha256.encode())
        return cleared


def marker_path(work_dir, unit: str) -> str:
    return storage.join(work_dir, PARTS, f"{unit}.json")


def part_path(work_dir, unit: str) -> str:
    return storage.join(work_dir, PARTS, f"{unit}.tar")


def done_units(work_dir) -> set[str]:
    return {storage.name_of(p).removesuffix(".json")
            for p in storage.glob(storage.join(work_dir, PARTS, "*.json"))}


def pending(work_dir, unit_ids: Iterable[str]) -> list[str]:
    done = done_units(work_dir)
    return [u for u in unit_ids if u not in done]


def read_manifests(work_dir, units: Iterable[str] | None = None) -> list[dict]:
    """Completed units' manifests (of ``units`` only, when given), sorted by unit id."""
    wanted = None if units is None else set(units)
    return [storage.read_json(marker_path(work_dir, unit)) for unit in sorted(done_units(work_dir))
            if wanted is None or unit in wanted]


def _add_stage_seconds(total: dict, extra: dict | None) -> None:
    for stage, seconds in (extra or {}).items():
        total[stage] = total.get(stage, 0.0) + float(seconds)


class PartWriter:
    """Streams one unit's samples into its part tar; published on :meth:`close`, dropped on
    :meth:`abort`. Opened at the first sample (a unit with no samples has no part)."""

    def __init__(self, work_dir: str, unit: str):
        self.location = part_path(work_dir, unit)
        self.unit = unit
        self.samples: list[dict] = []
        self._keys: set[str] = set()
        self._opened = None
        self._counting = None
        self._tar = None

    def add(self, meta: dict, audio) -> None:
        check_meta(meta, f"sample {meta.get('key')!r} of unit {self.unit}")
        key = meta["key"]
        if key in self._keys:
            raise FunfactoryError(f"unit {self.unit} produced sample key {key!r} twice")
        self._keys.add(key)
        if self._tar is None:
            self._opened = storage.open_write(self.location)
            self._counting = storage.CountingWriter(self._opened.__enter__(), hashed=False)
            self._tar = tarfile.open(fileobj=self._counting, mode="w|",
                                     format=tarfile.PAX_FORMAT)
        blob = json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8")
        flac = encode_flac(np.asarray(audio))
        json_offset = add_member(self._tar, f"{key}.json", blob)
        flac_offset = add_member(self._tar, f"{key}.flac", flac)
        self.samples.append({"key": key, "duration": float(meta["duration"]),
                             "json_offset": json_offset, "json_bytes": len(blob),
                             "flac_offset": flac_offset, "flac_bytes": len(flac)})

    def close(self) -> dict | None:
        """Publish the part; returns ``{"size"}`` (None when there were no samples)."""
        if self._tar is None:
            return None
        self._tar.close()
        self._opened.__exit__(None, None, None)
        return {"size": self._counting.written}

    def abort(self, error: BaseException) -> None:
        if self._tar is not None:
            self._opened.__exit__(type(error), error, error.__traceback__)
            self._tar = None


class Progress:
    """Progress lines on stderr: units done of a total, audio seconds, rate since the job began.
    Counts are per worker process on multi-process runners; the driver prints exact totals at
    the end."""

    def __init__(self, name: str, total: int, done_before: int = 0,
                 started_at: float | None = None):
        self.name, self.total, self.done = name, total, done_before
        self.started = time.time() if started_at is None else started_at
        self.seconds_in = 0.0

    def unit_done(self, unit: str, seconds_in: float, samples: int, rejects: int) -> str:
        self.done += 1
        self.seconds_in += seconds_in
        elapsed = max(time.time() - self.started, 1e-9)
        line = (f"[{self.name}] {self.done}/{self.total} units  {unit}: {samples} samples, "
                f"{rejects} rejects  ({self.seconds_in / 3600:.3f} h in, "
                f"{self.seconds_in / elapsed:.1f}x real time)")
        print(line, file=sys.stderr, flush=True)
        return line


class CommitUnit(beam.DoFn):
    """``(unit, work)`` -> the processor's elements streamed into the unit's part, then its
    manifest (module docstring); yields the manifest."""

    def __init__(self, processor: beam.DoFn, work_dir: str, name: str = "pipeline",
                 total: int = 0, done_before: int = 0, started_at: float | None = None):
        self.processor = processor
        self.work_dir = storage.url_of(work_dir)
        self.name, self.total, self.done_before = name, total, done_before
        self.started_at = time.time() if started_at is None else started_at

    def setup(self):
        self.processor.setup()
        self.progress = Progress(self.name, self.total, self.done_before, self.started_at)

    def teardown(self):
        self.processor.teardown()

    def process(self, element, *side_inputs):
        unit = element[0]
        part = PartWriter(self.work_dir, unit)
        infos, rejects = [], []
        stage_seconds: dict[str, float] = {}
        try:
            for out_unit, kind, payload in self.processor.process(element, *side_inputs):
                if out_unit != unit:
                    raise FunfactoryError(f"unit {unit}: its processor emitted an element of "
                                          f"unit {out_unit!r}")
                if kind == "sample":
                    started = time.perf_counter()
                    part.add(payload[0], payload[1])
                    _add_stage_seconds(stage_seconds, payload[2] if len(payload) > 2 else None)
                    _add_stage_seconds(stage_seconds, {"write": time.perf_counter() - started})
                elif kind == "reject":
                    _add_stage_seconds(stage_seconds, payload.get("stage_seconds"))
                    rejects.append({k: v for k, v in payload.items() if k != "stage_seconds"})
                elif kind == "unit":
                    _add_stage_seconds(stage_seconds, payload.get("stage_seconds"))
                    infos.append({k: v for k, v in payload.items() if k != "stage_seconds"})
                else:
                    raise FunfactoryError(f"unit {unit}: unknown element kind {kind!r}")
            if len(infos) != 1:
                raise FunfactoryError(f"unit {unit} produced {len(infos)} 'unit' summaries; every "
                                      "unit must emit exactly one")
            part_info = part.close()
        except BaseException as e:
            part.abort(e)
            raise
        manifest = {"unit": unit, "info": infos[0], "part": part_info,
                    "samples": sorted(part.samples, key=lambda s: s["key"]),
                    "rejects": sorted(rejects, key=lambda r: (r.get("offset") or -1.0,
                                                              r.get("key") or "")),
                    "stage_seconds": {k: round(v, 6) for k, v in sorted(stage_seconds.items())}}
        storage.write_json(marker_path(self.work_dir, unit), manifest)
        beam.metrics.Metrics.counter("units", "done").inc()
        beam.metrics.Metrics.counter("write", "samples").inc(len(part.samples))
        self.progress.unit_done(unit, float(manifest["info"].get("seconds_in", 0.0)),
                                len(part.samples), len(rejects))
        yield manifest


def read_part_samples(work_dir, manifest: dict, keys: Iterable[str] | None = None):
    """Yield ``(meta, flac_bytes)`` of a committed unit's samples (``keys`` only), in key
    order, by the offsets its manifest records."""
    wanted = None if keys is None else set(keys)
    samples = [s for s in manifest["samples"] if wanted is None or s["key"] in wanted]
    if not samples:
        return
    with storage.open_read(part_path(work_dir, manifest["unit"])) as f:
        for s in sorted(samples, key=lambda s: s["key"]):
            f.seek(s["json_offset"])
            blob = f.read(s["json_bytes"])
            f.seek(s["flac_offset"])
            flac = f.read(s["flac_bytes"])
            if len(blob) != s["json_bytes"] or len(flac) != s["flac_bytes"]:
                raise FunfactoryError(f"part of unit {manifest['unit']} in {work_dir} is shorter "
                                      "than its manifest says; rerun with --restart")
            yield json.loads(blob), flac
