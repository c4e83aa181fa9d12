"""Beam transform of the augment pipeline: one input shard -> its augmented output shards.

The unit of work is an input shard (as datatrove's tasks): a worker reads it, augments every
sample, writes output shards numbered from the input's position, and leaves a completion marker
with one report row per output sample. A rerun after a crash skips shards that have a marker and
rewrites the others to the same bytes (same seed, same order), so the result equals an
uninterrupted run. Kept, dropped and rejected samples are counted as Beam metrics.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import apache_beam as beam
from apache_beam.metrics import Metrics

from funfactory.errors import FunfactoryError

log = logging.getLogger(__name__)

DONE_DIR = "_done"
REJECTS_DIR = "_rejects"
#: output shard numbers reserved per input shard (input position p writes p*STRIDE ...)
SHARD_STRIDE = 100


def marker_path(out_dir: str | Path, position: int) -> Path:
    return Path(out_dir) / DONE_DIR / f"input-{position:06d}.json"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


class AugmentShardFn(beam.DoFn):
    """(position, input shard url) -> report rows of the samples written for it."""

    def __init__(self, config, out_dir: str, config_sha256: str):
        self.config = config
        self.out_dir = str(out_dir)
        self.config_sha256 = config_sha256
        self.written = Metrics.counter("augment", "samples_written")
        self.noise_only_written = Metrics.counter("augment", "noise_only_written")
        self.rejected = Metrics.counter("augment", "samples_rejected")
        self.read_errors = Metrics.counter("augment", "read_errors")
        self.skipped = Metrics.counter("augment", "input_shards_skipped_done")

    def setup(self):
        from funfactory.pipelines.augment.augmenter import SampleAugmenter
        from funfactory.pipelines.augment.noise_corpus import NoiseCorpus
        from funfactory.pipelines.augment.noise_only import SpeechDetector
        from funfactory.pipelines.augment.rir import load_impulse_responses

        cfg = self.config
        corpus = NoiseCorpus.from_sources(cfg.noise.sources, cfg.noise.test_fraction,
                                          cfg.noise.split_salt)
        clips = corpus.select(cfg.noise.split)
        for clip in clips:
            clip.audio  # load once per worker, not per sample
        responses = load_impulse_responses(cfg.rir.paths) if cfg.rir.probability > 0 else None
        detector = SpeechDetector() if cfg.noise_only.vad_check and cfg.noise_only.share > 0 \
            else None
        self.augmenter = SampleAugmenter(cfg, clips, responses, detector, self.config_sha256)

    def process(self, element):
        from funfactory.shards.reader import ShardReader
        from funfactory.shards.writer import ShardWriter

        position, url = element
        marker = marker_path(self.out_dir, position)
        if marker.exists():
            self.skipped.inc()
            yield from json.loads(marker.read_text(encoding="utf-8"))["rows"]
            return
        cfg = self.config
        reader = ShardReader(url)
        rows, rejects = [], []
        first = position * SHARD_STRIDE
        with ShardWriter(self.out_dir, cfg.dataset, cfg.split, max_count=cfg.max_count,
                         start_index=first, merge=False) as writer:
            for sample in reader:
                derived, rejected = self.augmenter.augment(sample.meta, sample.audio)
                for item in derived:
                    writer.write(item.meta, item.audio)
                    rows.append(_row(item.meta, url))
                    self.written.inc()
                    if item.meta["task"] == "noise_only":
                        self.noise_only_written.inc()
                for r in rejected:
                    rejects.append({"key": r.key, "reason": r.reason, "detail": r.detail,
                                    "shard": url})
                    self.rejected.inc()
            if writer.next_index > first + SHARD_STRIDE:
                raise FunfactoryError(f"input shard {url} produced more than {SHARD_STRIDE} "
                                      "output shards; raise max_count")
        for e in reader.error_log:
            rejects.append({"key": e.key, "reason": f"read_{e.reason}", "detail": e.detail,
                            "shard": e.shard})
            self.read_errors.inc()
        if rejects:
            _write_atomic(Path(self.out_dir) / REJECTS_DIR / f"input-{position:06d}.jsonl",
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejects))
        _write_atomic(marker, json.dumps({"input": url, "rows": rows,
                                          "rejects": len(rejects)}, ensure_ascii=False))
        yield from rows


def _row(meta: dict, input_shard: str) -> dict:
    aug = meta.get("augment") or {}
    return {"key": meta["key"], "task": meta["task"], "kind": aug.get("kind", "clean"),
            "parent_key": aug.get("parent_key", meta["key"]), "snr_db": aug.get("snr_db"),
            "noise_id": aug.get("noise_id"), "noise_split": aug.get("noise_split"),
            "rir_id": aug.get("rir_id"), "duration": meta["duration"], "input_shard": input_shard}
