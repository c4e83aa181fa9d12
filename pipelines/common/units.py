"""Resumable units of work: staging, per-unit parts and completion markers.

A pipeline splits its input into *units* (the label pipeline: one source recording; augment: one
input shard) with deterministic ids. Every element that reaches the end of a pipeline is a tuple
``(unit_id, kind, payload)``:

- ``("sample", (meta, audio))``: a finished sample; ``meta`` is a schema-v1 dict
  (``funfactory.shards.schema.new_meta``), ``audio`` 16 kHz mono float32 (or int16). An optional
  ``meta``-external timing dict may ride along as ``(meta, audio, stage_seconds)``.
- ``("reject", row)``: a :func:`funfactory.pipelines.common.rejects.reject_row` dict, optionally
  with a ``"stage_seconds"`` key (time spent on the rejected item, kept out of the table).
- ``("unit", info)``: exactly one per unit, always, even when the unit yielded nothing: a dict
  with at least ``uri`` and ``seconds_in`` (input audio seconds), optionally ``stage_seconds``.

``WriteUnits(work_dir)`` (a PTransform) stages each sample as ``staging/{unit}/{key}.flac|.json``
(atomic writes, so audio never rides through the shuffle), groups the light records by unit, and
writes ``parts/{unit}.tar`` (samples in key order) and then ``parts/{unit}.json``, the unit's
manifest and completion marker: ``{"unit", "info", "samples": [{"key", "duration",
"json_bytes", "flac_bytes"}], "rejects": [rows], "stage_seconds": {stage: s}}``.

Resume: ``done_units(work_dir)`` lists units with a marker; the driver feeds only the others
(``pending(work_dir, unit_ids)``). A unit killed half-way has no marker and is redone from its
input; staging files are overwritten with the same bytes, so reruns add no duplicates.
``WorkDir(path).pin(config_sha256)`` refuses to resume a work folder made with another config.

Because a Beam batch job emits a grouped result only after its whole input is done, drivers run
units in *waves* (one pipeline per wave of N units) so that a kill loses at most one wave.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import sys
import tarfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import apache_beam as beam
import numpy as np

from funfactory.errors import FunfactoryError
from funfactory.pipelines.common.atomic import write_bytes_atomic, write_json_atomic
from funfactory.shards.audio import encode_flac
from funfactory.shards.schema import check_meta

log = logging.getLogger(__name__)

PARTS = "parts"
STAGING = "staging"


class WorkDir:
    """The private folder of one job: parts, markers, staging and the pinned config hash."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def parts(self) -> Path:
        return self.path / PARTS

    @property
    def staging(self) -> Path:
        return self.path / STAGING

    def pin(self, config_sha256: str, restart: bool = False) -> None:
        """Record the config hash; refuse a resume under a different config unless ``restart``
        (which clears the work folder)."""
        stamp = self.path / "config.sha256"
        if stamp.is_file():
            old = stamp.read_text().strip()
            if old != config_sha256:
                if not restart:
                    raise FunfactoryError(
                        f"work folder {self.path} was started with config {old[:12]}, this run "
                        f"has {config_sha256[:12]}: resume with the same config, or pass "
                        "--restart to discard the finished work")
            if restart:
                shutil.rmtree(self.path)
        elif restart and self.path.exists():
            shutil.rmtree(self.path)
        self.parts.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(stamp, config_sha256.encode())


def marker_path(work_dir: str | Path, unit: str) -> Path:
    return Path(work_dir) / PARTS / f"{unit}.json"


def done_units(work_dir: str | Path) -> set[str]:
    parts = Path(work_dir) / PARTS
    if not parts.is_dir():
        return set()
    return {p.stem for p in parts.glob("*.json") if not p.name.startswith(".")}


def pending(work_dir: str | Path, unit_ids: Iterable[str]) -> list[str]:
    done = done_units(work_dir)
    return [u for u in unit_ids if u not in done]


def read_manifests(work_dir: str | Path) -> list[dict]:
    """Every completed unit's manifest, sorted by unit id."""
    parts = Path(work_dir) / PARTS
    return [json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(parts.glob("*.json")) if not p.name.startswith(".")]


def _add_stage_seconds(total: dict, extra: dict | None) -> None:
    for stage, seconds in (extra or {}).items():
        total[stage] = total.get(stage, 0.0) + float(seconds)


class StageSample(beam.DoFn):
    """("sample", (meta, audio[, stage_seconds])) -> staged files; passes a light record on."""

    def __init__(self, work_dir: str):
        self.work_dir = str(work_dir)

    def process(self, element):
        unit, kind, payload = element
        if kind != "sample":
            yield element
            return
        started = time.perf_counter()
        meta, audio = payload[0], payload[1]
        stage_seconds = dict(payload[2]) if len(payload) > 2 else {}
        check_meta(meta, f"sample {meta.get('key')!r} of unit {unit}")
        flac = encode_flac(np.asarray(audio))
        blob = json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8")
        folder = Path(self.work_dir) / STAGING / unit
        write_bytes_atomic(folder / f"{meta['key']}.flac", flac)
        write_bytes_atomic(folder / f"{meta['key']}.json", blob)
        _add_stage_seconds(stage_seconds, {"write": time.perf_counter() - started})
        beam.metrics.Metrics.counter("write", "samples").inc()
        yield unit, "sample", {"key": meta["key"], "duration": float(meta["duration"]),
                               "json_bytes": len(blob), "flac_bytes": len(flac),
                               "stage_seconds": stage_seconds}


class Progress:
    """Progress lines on stderr: units done of a total, audio seconds, rate since the wave began.
    Counts are per worker process on multi-process runners; the driver prints exact totals
    between waves."""

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


class FinishUnit(beam.DoFn):
    """(unit, [records]) -> parts/{unit}.tar and the marker parts/{unit}.json."""

    def __init__(self, work_dir: str, name: str = "pipeline", total: int = 0, done_before: int = 0,
                 started_at: float | None = None):
        self.work_dir = str(work_dir)
        self.name, self.total, self.done_before = name, total, done_before
        self.started_at = time.time() if started_at is None else started_at

    def setup(self):
        self.progress = Progress(self.name, self.total, self.done_before, self.started_at)

    def process(self, element):
        unit, records = element
        infos, samples, rejects = [], [], []
        stage_seconds: dict[str, float] = {}
        for kind, payload in records:
            if kind == "unit":
                infos.append(payload)
            elif kind == "sample":
                samples.append(payload)
            elif kind == "reject":
                rejects.append({k: v for k, v in payload.items() if k != "stage_seconds"})
            else:
                raise FunfactoryError(f"unit {unit}: unknown element kind {kind!r}")
            extra = payload.get("stage_seconds") if isinstance(payload, dict) else None
            _add_stage_seconds(stage_seconds, extra)
        if len(infos) != 1:
            raise FunfactoryError(f"unit {unit} produced {len(infos)} 'unit' summaries; every "
                                  "unit must emit exactly one")
        samples.sort(key=lambda s: s["key"])
        keys = [s["key"] for s in samples]
        if len(set(keys)) != len(keys):
            raise FunfactoryError(f"unit {unit} produced duplicate sample keys")
        folder = Path(self.work_dir) / STAGING / unit
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for key in keys:
                for ext in ("json", "flac"):
                    data = (folder / f"{key}.{ext}").read_bytes()
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size, info.mtime, info.mode = len(data), 0, 0o644
                    tar.addfile(info, io.BytesIO(data))
        parts = Path(self.work_dir) / PARTS
        write_bytes_atomic(parts / f"{unit}.tar", buf.getvalue())
        info = {k: v for k, v in infos[0].items() if k != "stage_seconds"}
        manifest = {"unit": unit, "info": info,
                    "samples": [{k: s[k] for k in ("key", "duration", "json_bytes", "flac_bytes")}
                                for s in samples],
                    "rejects": sorted(rejects, key=lambda r: (r.get("offset") or -1.0,
                                                              r.get("key") or "")),
                    "stage_seconds": {k: round(v, 6) for k, v in sorted(stage_seconds.items())}}
        write_json_atomic(marker_path(self.work_dir, unit), manifest)
        shutil.rmtree(folder, ignore_errors=True)
        beam.metrics.Metrics.counter("units", "done").inc()
        self.progress.unit_done(unit, float(info.get("seconds_in", 0.0)), len(samples),
                                len(rejects))
        yield manifest


class WriteUnits(beam.PTransform):
    """PCollection[(unit, kind, payload)] -> PCollection[manifest] (module docstring)."""

    def __init__(self, work_dir: str | Path, name: str = "pipeline", total: int = 0,
                 done_before: int = 0):
        super().__init__()
        self.work_dir = str(work_dir)
        self.name, self.total, self.done_before = name, total, done_before
        self.started_at = time.time()

    def expand(self, items):
        return (items
                | "StageSamples" >> beam.ParDo(StageSample(self.work_dir))
                | "KeyByUnit" >> beam.Map(lambda e: (e[0], (e[1], e[2])))
                | "GroupByUnit" >> beam.GroupByKey()
                | "FinishUnits" >> beam.ParDo(FinishUnit(self.work_dir, self.name, self.total,
                                                         self.done_before, self.started_at)))


def read_part_samples(work_dir: str | Path, unit: str, keys: Iterable[str] | None = None):
    """Yield ``(meta, flac_bytes)`` of a completed unit's samples in key order."""
    wanted = None if keys is None else set(keys)
    with tarfile.open(Path(work_dir) / PARTS / f"{unit}.tar") as tar:
        members = defaultdict(dict)
        for member in tar.getmembers():
            key, ext = member.name.split(".", 1)
            if wanted is None or key in wanted:
                members[key][ext] = member
        for key in sorted(members):
            meta = json.loads(tar.extractfile(members[key]["json"]).read())
            yield meta, tar.extractfile(members[key]["flac"]).read()
