"""The run report: what went in, what came out, what was rejected and why, and where time went.

``RunReport.build(name, manifests, wall_seconds=, shards=, extra=)`` reads only the unit
manifests (:mod:`.units`), so it is the same on every runner (the DaskRunner has no Beam metrics)
and covers work finished before a resume. Fields (``as_dict()``):

- ``units``, ``units_with_samples``, ``units_rejected`` (whole-unit rejects, e.g. corrupt files);
- ``hours_in`` (input audio), ``hours_out`` (audio in shards), ``samples``, ``shards``;
- ``rejects`` (rows), ``rejects_by_reason`` (``"stage/reason": count``), ``rejected_hours``;
- ``stage_seconds`` (summed per stage over all units, e.g. ``decode``, ``vad``, ``asr``...),
  ``wall_seconds``;
- ``unaccounted``: units with an item that is neither in a shard nor in the rejects (must be
  empty): a unit cut into ``segments`` whose samples and keyed rejects do not add up, or a
  derived job's unit whose ``lost`` input keys are not empty.

``write(report_dir, shards_dir)`` (local paths or URLs) writes ``{name}-report.json`` and, from the shard index,
``{name}-durations.png`` (``funfactory.shards.stats.duration_histogram``); ``text()`` is the
printed form. Progress lines while a job runs come from :class:`.units.Progress`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from funfactory.shards import storage


@dataclass
class RunReport:
    name: str
    units: int = 0
    units_with_samples: int = 0
    units_rejected: int = 0
    samples: int = 0
    shards: int = 0
    hours_in: float = 0.0
    hours_out: float = 0.0
    rejects: int = 0
    rejected_hours: float = 0.0
    rejects_by_reason: dict = field(default_factory=dict)
    stage_seconds: dict = field(default_factory=dict)
    wall_seconds: float = 0.0
    unaccounted: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @classmethod
    def build(cls, name: str, manifests: list[dict], wall_seconds: float = 0.0,
              shards: int = 0, extra: dict | None = None) -> RunReport:
        report = cls(name=name, units=len(manifests), shards=shards, wall_seconds=wall_seconds,
                     extra=dict(extra or {}))
        reasons: Counter = Counter()
        stages: Counter = Counter()
        for m in manifests:
            info = m["info"]
            report.hours_in += float(info.get("seconds_in", 0.0)) / 3600
            report.samples += len(m["samples"])
            report.hours_out += sum(s["duration"] for s in m["samples"]) / 3600
            report.units_with_samples += bool(m["samples"])
            unit_rejects = [r for r in m["rejects"] if r.get("key") is None]
            report.units_rejected += bool(unit_rejects) and not m["samples"]
            for r in m["rejects"]:
                reasons[f"{r['stage']}/{r['reason']}"] += 1
                if r.get("key") is not None:
                    report.rejected_hours += float(r.get("duration") or 0.0) / 3600
            report.rejects += len(m["rejects"])
            stages.update(m.get("stage_seconds", {}))
            expected = info.get("segments")
            segment_rejects = sum(r.get("key") is not None for r in m["rejects"])
            if (expected is not None and expected != len(m["samples"]) + segment_rejects) \
                    or info.get("lost"):
                report.unaccounted.append(m["unit"])
        report.rejects_by_reason = dict(sorted(reasons.items()))
        report.stage_seconds = {k: round(v, 3) for k, v in sorted(stages.items())}
        return report

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        lines = [f"{self.name}: {self.units} units, {self.hours_in:.4f} h in -> {self.samples} "
                 f"samples, {self.hours_out:.4f} h out in {self.shards} shards "
                 f"({self.wall_seconds:.1f} s wall)",
                 f"  rejects: {self.rejects} ({self.units_rejected} whole units, "
                 f"{self.rejected_hours:.4f} h of segments)"]
        lines += [f"    {reason:<32} {count:>7}" for reason, count in
                  self.rejects_by_reason.items()]
        total = sum(self.stage_seconds.values()) or 1.0
        lines.append("  time per stage (summed over workers):")
        lines += [f"    {stage:<32} {seconds:>9.2f} s {100 * seconds / total:5.1f} %"
                  for stage, seconds in self.stage_seconds.items()]
        if self.unaccounted:
            lines.append(f"  UNACCOUNTED units: {self.unaccounted}")
        return "\n".join(lines)

    def write(self, report_dir: str | Path, shards_dir: str | Path | None = None) -> Path | str:
        """``{name}-report.json`` in ``report_dir``; with ``shards_dir``, the duration histogram
        of its index as ``{name}-durations.png`` beside it."""
        path = storage.write_json(storage.join(report_dir, f"{self.name}-report.json"),
                                  self.as_dict())
        if shards_dir is not None and self.samples:
            from funfactory.shards.stats import compute_stats, duration_histogram
            duration_histogram(compute_stats(shards_dir),
                               storage.join(report_dir, f"{self.name}-durations.png"),
                               title=self.name)
        return path


def load_report(path: str | Path) -> dict:
    return storage.read_json(path)
