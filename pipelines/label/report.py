"""The label run report: the shared :class:`funfactory.pipelines.common.report.RunReport` plus
label figures in ``extra``:

- ``chosen_by_system``: how often each system's hypothesis became the label;
- ``mean_agreement``: mean pairwise error rate between systems over kept samples, per metric;
- ``model_seconds`` (VAD model + ASR calls) and ``share_outside_model``: the fraction of stage
  time spent outside model inference (decode, resample, segmentation, vote, ITN, filters,
  writing);
- ``beam_counters``: Beam metrics counters (kept/dropped per step) where the runner reports them.
"""

from __future__ import annotations

import json
import tarfile
from collections import Counter, defaultdict
from pathlib import Path

from funfactory.pipelines.common.report import RunReport
from funfactory.pipelines.common.units import PARTS


def _sample_labels(work_dir: Path, manifests: list[dict]):
    for m in manifests:
        if not m["samples"]:
            continue
        with tarfile.open(work_dir / PARTS / f"{m['unit']}.tar") as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    yield json.loads(tar.extractfile(member).read())["labels"]


def label_report(work_dir: str | Path, manifests: list[dict], wall_seconds: float, shards: int,
                 beam_counters: dict | None = None) -> RunReport:
    chosen: Counter = Counter()
    agreement: dict[str, list[float]] = defaultdict(list)
    for labels in _sample_labels(Path(work_dir), manifests):
        chosen[labels.get("chosen")] += 1
        figures = labels.get("agreement") or {}
        metric = figures.get("metric")
        if metric:
            agreement[metric].append(figures[f"mean_pairwise_{metric}"])
    report = RunReport.build("label", manifests, wall_seconds=wall_seconds, shards=shards)
    vad_model = sum(float(m["info"].get("vad_model_seconds", 0.0)) for m in manifests)
    model = vad_model + report.stage_seconds.get("asr", 0.0)
    total = sum(report.stage_seconds.values())
    report.extra = {
        "chosen_by_system": dict(sorted(chosen.items())),
        "mean_agreement": {k: round(sum(v) / len(v), 4) for k, v in sorted(agreement.items())},
        "model_seconds": round(model, 3), "vad_model_seconds": round(vad_model, 3),
        "stage_seconds_total": round(total, 3),
        "share_outside_model": round(1 - model / total, 4) if total else None,
        "beam_counters": dict(sorted((beam_counters or {}).items())),
    }
    return report
