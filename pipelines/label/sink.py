"""From labelled segments to shards: sample JSON, then the shared deterministic sink.

:class:`ToSample` turns a segment that passed every step into ``("sample", (meta, audio,
stage_seconds))`` for :class:`funfactory.pipelines.common.units.WriteUnits`; the meta is a
schema-v1 sample (``task: asr``) with every hypothesis in ``labels``, the source offset and the
config hash in ``lineage``. :func:`write_shards` packs the completed units with
:func:`funfactory.pipelines.common.sink.pack_shards`.
"""

from __future__ import annotations

import apache_beam as beam

from funfactory import __version__
from funfactory.pipelines.common.sink import pack_shards
from funfactory.pipelines.label.config import LabelConfig
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


def write_shards(cfg: LabelConfig, work_dir, out_dir, units, options=None) -> list[str]:
    return pack_shards(work_dir, out_dir, cfg.output.dataset, cfg.output.split,
                       max_count=cfg.output.max_count, max_bytes=cfg.output.max_bytes,
                       options=options, units=units)
