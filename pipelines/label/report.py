"""The label run report: the shared :class:`funfactory.pipelines.common.report.RunReport` plus
label figures in ``extra``:

- ``chosen_by_system``: how often each system's hypothesis became the label;
- ``mean_agreement``: mean pairwise error rate between systems over kept samples, per metric;
- ``model_seconds`` (VAD model + ASR calls) and ``share_outside_model``: the fraction of stage
  time spent outside model inference (decode, resample, segmentation, vote, ITN, filters,
  writing);
- ``beam_counters``: Beam metrics counters (kept/dropped per step) where the runner reports them.

The label figures are read from the job's shards (the JSON members, by the index's offsets), so
they cover work finished before a resume. The rejects table is the executor's
``label-rejects.parquet``; its reasons by stage: ``ingest`` (missing_file, empty_file, not_audio,
corrupt_file, no_audio, decode_error, unsupported_uri), ``vad`` (no_speech for a whole file,
too_short for a segment), ``vote`` (too_few_hypotheses, empty_text, low_agreement), ``filter``
(empty_text, duration, language_mismatch, hallucination_phrase, repetition, chars_per_second).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from itertools import groupby

import pyarrow.parquet as pq

from funfactory.pipelines.common.report import RunReport
from funfactory.shards import storage
from funfactory.shards.index import index_path


def _sample_labels(out_dir, dataset: str, split: str):
    location = index_path(out_dir, dataset, split)
    if not storage.exists(location):
        return
    with storage.open_read(location) as f:
        rows = pq.read_table(f, columns=["shard", "json_offset", "json_size"]).to_pylist()
    for shard, members in groupby(rows, key=lambda r: r["shard"]):
        with storage.open_read(storage.join(out_dir, shard)) as tar:
            for row in members:
                tar.seek(row["json_offset"])
                yield json.loads(tar.read(row["json_size"]))["labels"]


def label_report(out_dir, dataset: str, split: str, manifests: list[dict], wall_seconds: float,
                 shards: int, beam_counters: dict | None = None) -> RunReport:
    chosen: Counter = Counter()
    agreement: dict[str, list[float]] = defaultdict(list)
    for labels in _sample_labels(out_dir, dataset, split):
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
