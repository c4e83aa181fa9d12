"""The label pipeline's rejects table: every unit's rejects rows, in one Parquet file
(``{report_dir}/label-rejects.parquet``, schema :data:`funfactory.pipelines.common.rejects.
REJECTS_SCHEMA`).

Reasons by stage: ``ingest`` (missing_file, empty_file, not_audio, corrupt_file, no_audio,
decode_error, unsupported_uri), ``vad`` (no_speech for a whole file, too_short for a segment),
``vote`` (too_few_hypotheses, empty_text, repetition_loop, hallucination, low_likelihood,
high_estimated_wer; the detail ends in ``evidence=`` and a JSON object), ``filter``
(empty_text, duration, language_mismatch, hallucination_phrase, repetition, chars_per_second).
"""

from __future__ import annotations

from pathlib import Path

from funfactory.pipelines.common.rejects import write_rejects


def collect_rejects(manifests: list[dict]) -> list[dict]:
    return [row for m in manifests for row in m["rejects"]]


def write_label_rejects(manifests: list[dict], report_dir: str | Path) -> Path:
    return write_rejects(collect_rejects(manifests), Path(report_dir) / "label-rejects.parquet")
