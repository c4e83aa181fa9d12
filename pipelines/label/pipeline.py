"""The labelling pipeline, composed (Fun-ASR report section 3.1), on the common executor.

:func:`label_processor` is the per-source unit processor, the steps chained in the worker that
runs the source::

    (unit, source) -> SegmentSources (ingest + VAD, streamed; segments planned into decoding
                      windows, batches of about asr.batch_size segments)
                   -> PseudoLabel (every backend, window by window) -> Vote -> ApplyItn -> FilterLabels
                   -> ToSample

(segments with a human transcript take CheckReference instead of Vote when
``reference.as_label`` asks for it: :mod:`funfactory.pipelines.label.reference_check`)

and ``run_label(cfg, input, out_dir, options)`` runs a job: first the sample pass that estimates
each system's reliability on this job (:mod:`funfactory.pipelines.label.sample_pass`), then with
:func:`funfactory.pipelines.common.executor.run_job`: one Beam pipeline over every pending
source, each source committed by its worker (part, then manifest), shards packed incrementally,
the rejects table and the run report. Input, work folder, shards and reports may be local paths
or fsspec URLs (``s3://...``). A job killed at any point and started again with the same config
redoes only the sources that had not committed, and writes the same shards as an uninterrupted
run.
"""

from __future__ import annotations

import time

import apache_beam as beam

from funfactory.config import config_sha256
from funfactory.errors import FunfactoryError
from funfactory.pipelines.common.executor import (REPORT_DIR, Chain, Job, pending_inputs,
                                                  run_job)
from funfactory.pipelines.label.config import LabelConfig
from funfactory.pipelines.label.filters import FilterLabels
from funfactory.pipelines.label.ingest import list_sources
from funfactory.pipelines.label.manifests import FORMATS as MANIFEST_FORMATS
from funfactory.pipelines.label.manifests import detect_format
from funfactory.pipelines.label.itn import ApplyItn
from funfactory.pipelines.label.pseudo_label import PseudoLabel
from funfactory.pipelines.label.reference_check import AS_LABEL, CheckReference, VoteOrCheckReference
from funfactory.pipelines.label.reliability import NONE, JobReliability
from funfactory.pipelines.label.report import label_report
from funfactory.pipelines.label.sample_pass import sample_estimate
from funfactory.pipelines.label.sink import ToSample
from funfactory.pipelines.label.vad import SegmentSources
from funfactory.pipelines.label.vote import Vote
from funfactory.shards import storage


class SourceOf(beam.DoFn):
    """``(unit, source dict)`` -> the source dict (the first step of the chain)."""

    def process(self, element):
        yield element[1]


def label_processor(cfg: LabelConfig, config_sha: str, reference_labels: bool = False,
                    job: JobReliability = NONE, known: dict | None = None) -> Chain:
    """With ``reference_labels``, segments that carry a human transcript take
    :class:`CheckReference` instead of the vote; ``job`` and ``known`` are the sample pass's
    reliability estimate and hypotheses (:mod:`funfactory.pipelines.label.sample_pass`)."""
    max_duration = (cfg.vad.long_form_max_seconds if cfg.vad.long_form
                    else cfg.filters.max_duration_seconds)
    vote = Vote(cfg.vote, job)
    if reference_labels:
        vote = VoteOrCheckReference(vote, CheckReference(cfg.reference))
    return Chain([SourceOf(),
                  SegmentSources(cfg.vad, cfg.ingest.window_seconds, cfg.asr.batch_size,
                                 cfg.asr.pack_seconds, cfg.asr.pack_gap_seconds),
                  PseudoLabel(cfg.asr.backends, known, cfg.asr.pack_gap_seconds), vote, ApplyItn(cfg.itn),
                  FilterLabels(cfg.filters, max_duration), ToSample(config_sha)])


def uses_reference_labels(cfg: LabelConfig, input_path) -> bool:
    """Whether human transcripts become labels (``reference.as_label``; ``toolkit``: only for
    Kaldi, NeMo and Fun-ASR inputs, which are read from local paths)."""
    mode = cfg.reference.as_label
    if mode not in AS_LABEL:
        raise FunfactoryError(f"reference.as_label {mode!r}: use one of {', '.join(AS_LABEL)}")
    if cfg.ingest.format != "auto":
        fmt = cfg.ingest.format
    else:
        fmt = detect_format(storage.as_location(input_path)) if storage.is_local(input_path) else None
    return mode == "always" or (mode == "toolkit" and fmt in MANIFEST_FORMATS)


def label_job(cfg: LabelConfig, input_path, out_dir, restart: bool = False, echo=print) -> Job:
    sha = config_sha256(cfg)
    sources = list_sources(input_path, cfg.ingest)
    reports = storage.url_of(cfg.output.report_dir or storage.join(out_dir, REPORT_DIR))
    started = time.monotonic()
    reliability, known = sample_estimate(cfg, sources, reports, sha, restart, echo)
    sample_seconds = time.monotonic() - started
    processor = label_processor(cfg, sha, uses_reference_labels(cfg, input_path), reliability,
                                known)
    return Job(name="label", out_dir=out_dir, config_sha256=sha,
               unit_ids=[s.id for s in sources], processor=processor,
               inputs=pending_inputs({s.id: s.as_dict() for s in sources}),
               dataset=cfg.output.dataset, split=cfg.output.split,
               max_count=cfg.output.max_count, max_bytes=cfg.output.max_bytes,
               work_dir=cfg.output.work_dir or None, report_dir=cfg.output.report_dir or None,
               report=lambda manifests, wall, shards, counters: label_report(
                   out_dir, cfg.output.dataset, cfg.output.split, manifests, wall, shards,
                   counters, reliability, sample_seconds))


def run_label(cfg: LabelConfig, input_path, out_dir, options=None, restart: bool = False,
              echo=print):
    """Run (or resume) a label job; returns the RunReport (module docstring)."""
    return run_job(label_job(cfg, input_path, out_dir, restart, echo), options, restart,
                   echo).report
