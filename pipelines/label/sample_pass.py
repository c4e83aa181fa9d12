"""Where a label job's reliability estimate comes from: a first pass over a sample of its
segments, before the job's units run (Fun-ASR report section 3.1).

A Beam job labels its units independently, so the job-level estimate of each system's error
rate (:func:`funfactory.pipelines.label.confidence.job_reliability`) has to exist before any
worker votes. :func:`sample_estimate` takes whole sources in a fixed order (by the sha256 of
their ids) until ``vote.reliability_sample_segments`` segments are in, runs the job's own
ingest + VAD and ASR steps over them in this process, and estimates each system's rate per
language from their hypotheses. A job smaller than the sample is estimated from all of it.

The estimate and the sample's hypotheses are written to ``label-reliability.json`` in the job's
report folder, under the config hash. A resumed job reads them back instead of sampling again, so
it votes with the same figures as an uninterrupted run; ``--restart`` samples afresh. The sample's
hypotheses are handed to the job's ASR step (:class:`funfactory.pipelines.label.pseudo_label.
PseudoLabel`, ``known``), which does not transcribe those segments twice (a segment's hypotheses
do not depend on its batch, so they are the ones the job would have computed; their ASR time
goes with them into the job's stage times).

``vote.reliability_sample_segments=0`` skips the pass: each system is then judged by its own
scores alone, as with no job estimate.
"""

from __future__ import annotations

import hashlib

from funfactory.pipelines.label.config import LabelConfig
from funfactory.pipelines.label.confidence import job_reliability, load_model
from funfactory.pipelines.label.ingest import Source
from funfactory.pipelines.label.pseudo_label import PseudoLabel
from funfactory.pipelines.label.reliability import NONE, JobReliability
from funfactory.pipelines.label.vad import SegmentSources
from funfactory.shards import storage

FILE = "label-reliability.json"


def sample_order(sources: list[Source]) -> list[Source]:
    """Sources in the sample's order: by the sha256 of their ids (spread over the job, fixed)."""
    return sorted(sources, key=lambda s: (hashlib.sha256(s.id.encode()).hexdigest(), s.id))


def sample_segments(cfg: LabelConfig, sources: list[Source],
                    limit: int) -> tuple[list[dict], int]:
    """Every labelled segment (key, language, duration, labels) of the first sources in
    :func:`sample_order` until ``limit`` segments are in, and how many sources that took."""
    segmenter = SegmentSources(cfg.vad, cfg.ingest.window_seconds, cfg.asr.batch_size,
                               cfg.asr.pack_seconds, cfg.asr.pack_gap_seconds)
    labeller = PseudoLabel(cfg.asr.backends, gap_seconds=cfg.asr.pack_gap_seconds)
    segmenter.setup()
    labeller.setup()
    out: list[dict] = []
    taken = 0
    for source in sample_order(sources):
        if len(out) >= limit:
            break
        taken += 1
        for item in segmenter.process(source.as_dict()):
            if item[1] != "batch":
                continue
            for _, _, p in labeller.process(item):
                out.append({"key": p["key"], "language": p["language"],
                            "duration": p["duration"], "labels": p["labels"],
                            "asr_seconds": p["stage_seconds"].get("asr", 0.0)})
    return out, taken


def sample_estimate(cfg: LabelConfig, sources: list[Source], report_dir, config_sha256: str,
                    restart: bool = False, echo=print) -> tuple[JobReliability, dict]:
    """The job's reliability estimate and the sample's hypotheses by segment key (module
    docstring), read back from ``report_dir`` when this config already made them."""
    limit = cfg.vote.reliability_sample_segments
    if limit <= 0 or not sources:
        return NONE, {}
    location = storage.join(report_dir, FILE)
    if not restart and storage.exists(location):
        saved = storage.read_json(location)
        if saved.get("config_sha256") == config_sha256:
            return JobReliability.from_dict(saved["reliability"]), saved["hypotheses"]
    segments, taken = sample_segments(cfg, sources, limit)
    reliability = job_reliability(segments, load_model(cfg.vote.confidence_model), {
        "segments": len(segments), "sources": taken, "of_sources": len(sources),
        "sample_limit": limit})
    hypotheses = {s["key"]: {"labels": s["labels"], "language": s["language"],
                             "asr_seconds": s["asr_seconds"]} for s in segments}
    storage.makedirs(report_dir)
    storage.write_json(location, {"config_sha256": config_sha256,
                                  "reliability": reliability.as_dict(), "hypotheses": hypotheses})
    echo(f"[label] reliability from {len(segments)} segments of {taken} of {len(sources)} "
         "sources: " + "; ".join(
             f"{language or 'unknown'} " + ", ".join(
                 f"{s} {100 * f['estimated_error']:.1f} %" for s, f in table.items())
             for language, table in reliability.languages.items()))
    return reliability, hypotheses
