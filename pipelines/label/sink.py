"""From labelled segments to samples: :class:`ToSample` turns a segment that passed every step
into ``("sample", (meta, audio, stage_seconds))`` for the executor's
:class:`funfactory.pipelines.common.units.CommitUnit`; the meta is a schema-v1 sample (``task:
asr``) with every hypothesis in ``labels``, the source offset and the config hash in
``lineage``.
"""

from __future__ import annotations

import apache_beam as beam

from funfactory import __version__
from funfactory.shards.schema import new_meta

PIPELINE = "label"


def sample_meta(unit: str, p: dict, config_sha256: str) -> dict:
    language = p["language"] or ""
    extra = {"labels": p["labels"]}
    if p.get("reference") is not None:
        extra["reference"] = p["reference"]
    return new_meta(key=p["key"], text=p["text"], raw_text=p["raw_text"],
                    language=language, duration=len(p["audio"]) / 16000, task="asr",
                    source_id=unit, uri=p["uri"], offset=p["offset"],
                    published_at=p["published_at"], pipeline=PIPELINE,
                    version=__version__, config_sha256=config_sha256, **extra)


class ToSample(beam.DoFn):
    def __init__(self, config_sha256: str):
        self.config_sha256 = config_sha256

    def process(self, item):
        unit, kind, p = item
        if kind != "segment":
            yield item
            return
        yield unit, "sample", (sample_meta(unit, p, self.config_sha256), p["audio"],
                               p["stage_seconds"])

