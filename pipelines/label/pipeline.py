"""The labelling pipeline, composed (Fun-ASR report section 3.1), with waves and resume.

``LabelSources(cfg, config_sha256)`` is the per-source transform::

    sources -> SegmentSources (ingest + VAD, streamed; batches of asr.batch_size segments)
            -> PseudoLabel (every backend, batched) -> Vote -> ApplyItn -> FilterLabels
            -> ToSample

(segments with a human transcript take CheckReference instead of Vote when
``reference.as_label`` asks for it: :mod:`funfactory.pipelines.label.reference_check`)

and ``run_label(cfg, input, out_dir, options)`` drives a job:

1. list the sources (``ingest.list_sources``), pin the work folder to the config hash;
2. skip sources whose completion marker exists; run the rest in waves of
   ``sources_per_wave`` sources, one Beam pipeline each, ending in
   :class:`funfactory.pipelines.common.units.WriteUnits` (per-source part + marker);
3. pack every finished source into shards (:func:`funfactory.pipelines.common.sink.
   pack_shards`), write the rejects table, the run report (JSON, printed) and the duration
   histogram.

A job killed at any point and started again with the same config redoes at most the wave it was
in and then produces the same shards as an uninterrupted run.
"""

from __future__ import annotations

import time
from pathlib import Path

import apache_beam as beam

from funfactory.config import config_sha256
from funfactory.errors import FunfactoryError
from funfactory.pipelines.common.runner import beam_options, run_and_wait
from funfactory.pipelines.common.units import WorkDir, WriteUnits, done_units, read_manifests
from funfactory.pipelines.label.config import LabelConfig
from funfactory.pipelines.label.filters import FilterLabels
from funfactory.pipelines.label.ingest import list_sources
from funfactory.pipelines.label.manifests import FORMATS as MANIFEST_FORMATS
from funfactory.pipelines.label.manifests import detect_format
from funfactory.pipelines.label.itn import ApplyItn
from funfactory.pipelines.label.pseudo_label import PseudoLabel
from funfactory.pipelines.label.reference_check import AS_LABEL, CheckReference, by_reference
from funfactory.pipelines.label.rejects import write_label_rejects
from funfactory.pipelines.label.report import label_report
from funfactory.pipelines.label.sink import ToSample, write_shards
from funfactory.pipelines.label.vad import SegmentSources
from funfactory.pipelines.label.vote import Vote


class LabelSources(beam.PTransform):
    """PCollection[source dict] -> PCollection[(unit, kind, payload)] (module docstring).

    With ``reference_labels``, segments that carry a human transcript take
    :class:`CheckReference` instead of the vote."""

    def __init__(self, cfg: LabelConfig, config_sha: str, reference_labels: bool = False):
        super().__init__()
        self.cfg, self.config_sha = cfg, config_sha
        self.reference_labels = reference_labels

    def expand(self, sources):
        cfg = self.cfg
        max_duration = (cfg.vad.long_form_max_seconds if cfg.vad.long_form
                        else cfg.filters.max_duration_seconds)
        labelled = (sources
                    | "SegmentSources" >> beam.ParDo(SegmentSources(
                        cfg.vad, cfg.ingest.window_seconds, cfg.asr.batch_size))
                    | "PseudoLabel" >> beam.ParDo(PseudoLabel(cfg.asr.backends)))
        if self.reference_labels:
            to_vote, referenced = labelled | "ByReference" >> beam.Partition(by_reference, 2)
            labelled = ((to_vote | "Vote" >> beam.ParDo(Vote(cfg.vote)),
                         referenced | "CheckReference" >> beam.ParDo(CheckReference(cfg.reference)))
                        | "Labelled" >> beam.Flatten())
        else:
            labelled = labelled | "Vote" >> beam.ParDo(Vote(cfg.vote))
        return (labelled
                | "ITN" >> beam.ParDo(ApplyItn(cfg.itn))
                | "Filter" >> beam.ParDo(FilterLabels(cfg.filters, max_duration))
                | "ToSample" >> beam.ParDo(ToSample(self.config_sha)))


def uses_reference_labels(cfg: LabelConfig, input_path) -> bool:
    """Whether human transcripts become labels (``reference.as_label``; ``toolkit``: only for
    Kaldi, NeMo and Fun-ASR inputs)."""
    mode = cfg.reference.as_label
    if mode not in AS_LABEL:
        raise FunfactoryError(f"reference.as_label {mode!r}: use one of {', '.join(AS_LABEL)}")
    fmt = cfg.ingest.format if cfg.ingest.format != "auto" else detect_format(Path(input_path))
    return mode == "always" or (mode == "toolkit" and fmt in MANIFEST_FORMATS)


def _waves(items: list, size: int) -> list[list]:
    size = max(1, size)
    return [items[i:i + size] for i in range(0, len(items), size)]


def run_label(cfg: LabelConfig, input_path: str | Path, out_dir: str | Path, options=None,
              restart: bool = False, echo=print):
    """Run (or resume) a label job; returns the RunReport (module docstring)."""
    started = time.monotonic()
    out_dir = Path(out_dir)
    sha = config_sha256(cfg)
    work = WorkDir(cfg.output.work_dir or out_dir / "_work")
    report_dir = Path(cfg.output.report_dir or out_dir / "_reports")
    work.pin(sha, restart=restart)
    sources = list_sources(input_path, cfg.ingest)
    reference_labels = uses_reference_labels(cfg, input_path)
    ids = {s.id for s in sources}
    done = done_units(work.path)
    todo = [s for s in sources if s.id not in done]
    echo(f"[label] {len(sources)} sources, {len(sources) - len(todo)} already done, "
         f"{len(todo)} to label (config {sha[:12]})")
    counters: dict[str, int] = {}
    waves = _waves(todo, cfg.sources_per_wave)
    finished = len(sources) - len(todo)
    for n, wave in enumerate(waves, 1):
        pipeline = beam.Pipeline(options=options or beam_options())
        _ = (pipeline
             | "Sources" >> beam.Create([s.as_dict() for s in wave])
             | "Label" >> LabelSources(cfg, sha, reference_labels)
             | "WriteUnits" >> WriteUnits(work.path, "label", total=len(sources),
                                          done_before=finished))
        for key, value in run_and_wait(pipeline).items():
            counters[key] = counters.get(key, 0) + value
        finished += len(wave)
        echo(f"[label] wave {n}/{len(waves)} done: {finished}/{len(sources)} sources "
             f"({time.monotonic() - started:.1f} s)")
    shards = write_shards(cfg, work.path, out_dir, ids, options=options)
    manifests = [m for m in read_manifests(work.path) if m["unit"] in ids]
    write_label_rejects(manifests, report_dir)
    report = label_report(work.path, manifests, time.monotonic() - started, len(shards),
                          counters)
    report.write(report_dir, out_dir)
    echo(report.text())
    return report
