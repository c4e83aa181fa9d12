"""ITN of the chosen label (Fun-ASR report section 3.1), with the shared normalisation.

``raw_text`` keeps the chosen hypothesis in canonical characters (NFKC, simplified Chinese,
collapsed spaces: :func:`funfactory.eval.textnorm.canonical_characters`) as it was spoken;
``text`` is its label form (:func:`funfactory.eval.textnorm.normalize_label`: wetext ITN per
Han/Latin run, Chinese spacing). With ``itn.enabled: false`` both are the raw form.
``labels["itn"]`` records which was done.
"""

from __future__ import annotations

import time

import apache_beam as beam

from funfactory.eval.textnorm import canonical_characters, normalize_label
from funfactory.pipelines.label.config import ItnConfig


class ApplyItn(beam.DoFn):
    def __init__(self, cfg: ItnConfig):
        self.cfg = cfg

    def process(self, item):
        unit, kind, p = item
        if kind != "segment":
            yield item
            return
        started = time.perf_counter()
        raw = canonical_characters(p["label_text"])
        text = normalize_label(raw, p["language"] or None) if self.cfg.enabled else raw
        out = {**p, "raw_text": raw, "text": text,
               "labels": {**p["labels"], "itn": bool(self.cfg.enabled)},
               "stage_seconds": {**p["stage_seconds"], "itn": time.perf_counter() - started}}
        beam.metrics.Metrics.counter("itn", "kept").inc()
        yield unit, kind, out
