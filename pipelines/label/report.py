"""The label run report: the shared :class:`funfactory.pipelines.common.report.RunReport` plus
label figures in ``extra``:

- ``chosen_by_system``: how often each system's hypothesis became the label;
- ``mean_agreement``: mean pairwise error rate between systems over kept samples, per metric;
- ``reliability``: per language, each system's error rate on this job as the vote used it (the
  sample pass's Dawid-Skene estimate, :mod:`funfactory.pipelines.label.sample_pass`; with its
  prior, the sample's mean own estimate, and the sample it came from in
  ``reliability_source``), next to
  the same EM rerun over every voted segment (``all_segments_error``: kept samples and vote
  rejects, whose evidence carries the hypotheses) and the mean of the system's per-segment
  estimates there (``mean_segment_estimate``);
- ``reliability_sample_seconds``: the sample pass's time (outside the Beam job's stage times);
- ``estimated_wer``: per language, the mean estimated error of the kept labels and how many
  were kept and rejected by the vote;
- ``model_seconds`` (VAD model + ASR calls) and ``share_outside_model``: the fraction of stage
  time spent outside model inference (decode, resample, segmentation, vote, ITN, filters,
  writing);
- ``beam_counters``: Beam metrics counters (kept/dropped per step) where the runner reports them.

The label figures are read from the job's shards (the JSON members, by the index's offsets), so
they cover work finished before a resume. The rejects table is the executor's
``label-rejects.parquet``; its reasons by stage: ``ingest`` (missing_file, empty_file, not_audio,
corrupt_file, no_audio, decode_error, unsupported_uri), ``vad`` (no_speech for a whole file,
too_short for a segment), ``vote`` (too_few_hypotheses, empty_text, repetition_loop, hallucination, low_likelihood,
high_estimated_wer; the detail ends in ``evidence=`` and a JSON object), ``filter``
(empty_text, duration, language_mismatch, hallucination_phrase, repetition, chars_per_second);
``reference`` (reference_unsupported); the folder listing's ``external_link``, ``broken_link``,
``duplicate_link``, ``not_a_file``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from itertools import groupby

import pyarrow.parquet as pq

from funfactory.pipelines.common.report import RunReport
from funfactory.pipelines.label.reliability import NONE, JobReliability, align, dawid_skene
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
                meta = json.loads(tar.read(row["json_size"]))
                yield {**meta["labels"], "language": meta["language"]}


EVIDENCE = "evidence="


def _voted_segments(out_dir, dataset: str, split: str, manifests: list[dict]):
    """(language, kept, {system: text}, {system: estimated error}, estimated WER, chosen system)
    of every voted segment."""
    for labels in _sample_labels(out_dir, dataset, split):
        reliability = labels.get("reliability") or {}
        texts = {s: v["text"] for s, v in labels.items() if s in reliability}
        yield labels.get("language"), True, texts, {
            s: v["estimated_error"] for s, v in reliability.items()}, \
            labels.get("estimated_wer"), labels.get("chosen")
    for m in manifests:
        for row in m["rejects"]:
            detail = row.get("detail") or ""
            if row["stage"] != "vote" or EVIDENCE not in detail:
                continue
            try:
                evidence = json.loads(detail.split(EVIDENCE, 1)[1])
            except ValueError:
                continue
            systems = evidence["systems"]
            yield evidence.get("language"), False, {s: v["text"] for s, v in systems.items()}, {
                s: v["estimated_error"] for s, v in systems.items()}, evidence["estimated_wer"], \
                evidence["chosen"]


def reliability_by_language(segments, job: JobReliability) -> tuple[dict, dict]:
    """The report's ``reliability`` and ``estimated_wer`` figures (module docstring)."""
    aligned: dict[str, list] = defaultdict(list)
    own: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    estimates: dict[str, dict] = defaultdict(lambda: {"kept": 0, "rejected": 0, "kept_sum": 0.0})
    for language, kept, hypotheses, errors, estimated, chosen in segments:
        language = language or ""
        if chosen in hypotheses:
            aligned[language].append(align(hypotheses, chosen, language or None))
        for system, error in errors.items():
            own[language][system].append(error)
        figures = estimates[language]
        figures["kept" if kept else "rejected"] += 1
        if kept and estimated is not None:
            figures["kept_sum"] += estimated
    reliability = {}
    for language in sorted(set(own) | set(job.languages)):
        used = job.languages.get(language, {})
        means = {s: sum(v) / len(v) for s, v in own[language].items()}
        prior = {s: used[s]["prior_error"] if s in used else means[s] for s in means}
        rerun = dawid_skene(aligned[language], prior) if prior else {}
        table = {}
        for system in sorted(set(used) | set(means)):
            table[system] = {**used.get(system, {"estimated_error": None}),
                             "all_segments_error": rerun.get(system, {}).get("estimated_error"),
                             "mean_segment_estimate": round(means[system], 4)
                             if system in means else None}
        reliability[language or "unknown"] = table
    summary = {language or "unknown": {
        "kept": f["kept"], "rejected_by_vote": f["rejected"],
        "mean_estimated_wer_kept": round(f["kept_sum"] / f["kept"], 4) if f["kept"] else None}
        for language, f in sorted(estimates.items())}
    return reliability, summary


def label_report(out_dir, dataset: str, split: str, manifests: list[dict], wall_seconds: float,
                 shards: int, beam_counters: dict | None = None,
                 job: JobReliability = NONE, sample_seconds: float = 0.0) -> RunReport:
    chosen: Counter = Counter()
    agreement: dict[str, list[float]] = defaultdict(list)
    for labels in _sample_labels(out_dir, dataset, split):
        chosen[labels.get("chosen")] += 1
        figures = labels.get("agreement") or {}
        metric = figures.get("metric")
        if metric:
            agreement[metric].append(figures[f"mean_pairwise_{metric}"])
    reliability, estimated = reliability_by_language(
        _voted_segments(out_dir, dataset, split, manifests), job)
    report = RunReport.build("label", manifests, wall_seconds=wall_seconds, shards=shards)
    vad_model = sum(float(m["info"].get("vad_model_seconds", 0.0)) for m in manifests)
    model = vad_model + report.stage_seconds.get("asr", 0.0)
    total = sum(report.stage_seconds.values())
    report.extra = {
        "chosen_by_system": dict(sorted(chosen.items())),
        "mean_agreement": {k: round(sum(v) / len(v), 4) for k, v in sorted(agreement.items())},
        "reliability": reliability, "reliability_source": job.source,
        "reliability_sample_seconds": round(sample_seconds, 3), "estimated_wer": estimated,
        "model_seconds": round(model, 3), "vad_model_seconds": round(vad_model, 3),
        "stage_seconds_total": round(total, 3),
        "share_outside_model": round(1 - model / total, 4) if total else None,
        "beam_counters": dict(sorted((beam_counters or {}).items())),
    }
    return report
