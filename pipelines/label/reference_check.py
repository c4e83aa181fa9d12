"""Human transcripts as labels, checked by the ASR systems (Fun-ASR report section 3.1: labels
are kept only where independent systems back them).

A segment whose source came with a transcript (a Kaldi ``text``, a NeMo manifest's ``text``, a
Fun-ASR record's assistant message) skips the vote: the transcript is its label. Every system's
hypothesis is still kept and scored against it with the shared scoring (WER for ``en``, CER for
``zh``, mixed error rate otherwise), and ``labels`` records ``chosen: "reference"`` and, under
``reference``, the transcript (``text``), the ``metric``, each system's error rate against it
(``with_reference``), and the best system and its rate (``best_system``, ``best_error``);
``agreement`` (the vote's pairwise figures) is null. A transcript that no system supports, whose best
system's error rate is above ``reference.max_error``, or that no system answered for, is not
kept silently: the segment goes to the rejects table as ``reference_unsupported`` (stage
``reference``) with the transcript and the closest hypothesis in its detail, for review.

:class:`VoteOrCheckReference` routes each segment: those with a reference take this path, when
the job was asked to use references as labels
(``reference.as_label``: ``toolkit`` for inputs read from Kaldi, NeMo or Fun-ASR data, ``always``,
or ``never``, which keeps the vote and stores the transcript only as ``reference``).
"""

from __future__ import annotations

import time

import apache_beam as beam

from funfactory.eval.scoring import score
from funfactory.pipelines.common.rejects import reject_row
from funfactory.pipelines.label.config import ReferenceConfig

AS_LABEL = ("toolkit", "always", "never")


def has_reference(item) -> bool:
    """Whether ``item`` is a segment that carries a human transcript."""
    unit, kind, payload = item
    return kind == "segment" and payload.get("reference") is not None


def agreement_with_reference(reference: str, hypotheses: dict[str, str],
                             language: str | None) -> dict:
    """Each system's error rate against the reference, the best system and its rate."""
    rates = {system: score([reference], [text], language=language)
             for system, text in hypotheses.items()}
    metric = next(iter(rates.values())).metric if rates else None
    best = min(rates, key=lambda s: (rates[s].rate, s)) if rates else None
    return {"metric": metric, "with_reference": {s: round(r.rate, 4) for s, r in rates.items()},
            "best_system": best, "best_error": round(rates[best].rate, 4) if best else None}


class CheckReference(beam.DoFn):
    def __init__(self, cfg: ReferenceConfig):
        self.cfg = cfg

    def process(self, item):
        unit, kind, p = item
        if kind != "segment":
            yield item
            return
        started = time.perf_counter()
        reference = p["reference"]
        answered = {name: label["text"] for name, label in p["labels"].items()
                    if "error" not in label}
        agreement = agreement_with_reference(reference, answered, p["language"] or None)
        p = {**p, "labels": {**p["labels"], "reference": {"text": reference, **agreement},
                             "chosen": "reference", "agreement": None},
             "label_text": reference,
             "stage_seconds": {**p["stage_seconds"], "reference": time.perf_counter() - started}}
        best = agreement["best_system"]
        if best is None or agreement["best_error"] > self.cfg.max_error:
            beam.metrics.Metrics.counter("reference", "unsupported").inc()
            closest = f"closest {best} ({agreement['metric']} {agreement['best_error']}): " \
                      f"{answered[best][:200]!r}" if best else "no system answered"
            row = reject_row(unit=unit, key=p["key"], stage="reference",
                             reason="reference_unsupported",
                             detail=f"transcript {reference[:200]!r} is supported by no system "
                                    f"(reference.max_error {self.cfg.max_error}); {closest}",
                             uri=p["uri"], offset=p["offset"], duration=p["duration"])
            row["stage_seconds"] = p["stage_seconds"]
            yield unit, "reject", row
            return
        beam.metrics.Metrics.counter("reference", "kept").inc()
        yield unit, kind, p


class VoteOrCheckReference(beam.DoFn):
    """Segments with a human transcript take :class:`CheckReference`, everything else the vote."""

    def __init__(self, vote: beam.DoFn, check: CheckReference):
        self.vote, self.check = vote, check

    def setup(self):
        self.vote.setup()
        self.check.setup()

    def teardown(self):
        self.vote.teardown()
        self.check.teardown()

    def process(self, item):
        step = self.check if has_reference(item) else self.vote
        yield from step.process(item) or ()
