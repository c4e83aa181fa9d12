"""Shard-to-shards Beam work shared by the augment and streaming pipelines.

The unit of work is an input shard (as datatrove's tasks): a worker reads it, passes every sample
to a *deriver* (`derive(meta, audio) -> (derived samples, rejects)`), writes the results to output
shards numbered from the input's position, and leaves a completion marker with one report row per
output sample. A rerun after a crash skips shards that have a marker and rewrites the others to
the same bytes (same seed, same order), so the result equals an uninterrupted run. Written,
rejected and unreadable samples are counted as Beam metrics; every input sample ends in an output
shard or in the rejects table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Protocol

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from funfactory.errors import FunfactoryError
from funfactory.pipelines.augment.samples import Derived, Rejected

DONE_DIR = "_done"
REJECTS_DIR = "_rejects"
#: output shard numbers reserved per input shard (input position p writes p*STRIDE ...)
SHARD_STRIDE = 100


class Deriver(Protocol):
    def derive(self, meta: dict, audio: np.ndarray) -> tuple[list[Derived], list[Rejected]]: ...


def marker_path(out_dir: str | Path, position: int) -> Path:
    return Path(out_dir) / DONE_DIR / f"input-{position:06d}.json"


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


class DeriveShardsFn(beam.DoFn):
    """(position, input shard url) -> report rows of the samples written for it.

    `make_deriver` is a picklable callable that builds the deriver once per worker (models and
    noise are loaded in `setup`); `row_of(meta)` turns an output sample into its report row.
    """

    def __init__(self, namespace: str, make_deriver: Callable[[], Deriver],
                 row_of: Callable[[dict], dict], out_dir: str, dataset: str, split: str,
                 max_count: int):
        self.namespace = namespace
        self.make_deriver, self.row_of = make_deriver, row_of
        self.out_dir, self.dataset, self.split = str(out_dir), dataset, split
        self.max_count = max_count
        self.written = Metrics.counter(namespace, "samples_written")
        self.inputs = Metrics.counter(namespace, "samples_read")
        self.rejected = Metrics.counter(namespace, "samples_rejected")
        self.read_errors = Metrics.counter(namespace, "read_errors")
        self.skipped = Metrics.counter(namespace, "input_shards_already_done")

    def setup(self):
        self.deriver = self.make_deriver()

    def process(self, element):
        from funfactory.shards.reader import ShardReader
        from funfactory.shards.writer import ShardWriter

        position, url = element
        marker = marker_path(self.out_dir, position)
        if marker.exists():
            self.skipped.inc()
            yield from json.loads(marker.read_text(encoding="utf-8"))["rows"]
            return
        reader = ShardReader(url)
        rows, rejects = [], []
        first = position * SHARD_STRIDE
        with ShardWriter(self.out_dir, self.dataset, self.split, max_count=self.max_count,
                         start_index=first, merge=False) as writer:
            for sample in reader:
                self.inputs.inc()
                derived, rejected = self.deriver.derive(sample.meta, sample.audio)
                for item in derived:
                    writer.write(item.meta, item.audio)
                    rows.append(dict(self.row_of(item.meta), input_shard=url))
                    self.written.inc()
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
            write_text_atomic(Path(self.out_dir) / REJECTS_DIR / f"input-{position:06d}.jsonl",
                              "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejects))
        write_text_atomic(marker, json.dumps({"input": url, "rows": rows,
                                              "rejects": len(rejects)}, ensure_ascii=False))
        yield from rows


def run_shardwise(urls: list[str], out_dir: Path, fn: DeriveShardsFn, dataset: str, split: str,
                  beam_args: list[str] | None = None) -> tuple[list[dict], list[dict]]:
    """Run `fn` over every input shard with Beam, merge the index; returns (rows, rejects)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from funfactory.shards.index import merge_index

    with beam.Pipeline(options=PipelineOptions(beam_args or [])) as p:
        _ = (p | "InputShards" >> beam.Create(list(enumerate(urls)))
               | "DeriveShards" >> beam.ParDo(fn))
    merge_index(out_dir, dataset, split)
    return collect_rows(out_dir)


def collect_rows(out_dir: Path) -> tuple[list[dict], list[dict]]:
    rows, rejects = [], []
    for marker in sorted((Path(out_dir) / DONE_DIR).glob("input-*.json")):
        rows += json.loads(marker.read_text(encoding="utf-8"))["rows"]
    for path in sorted((Path(out_dir) / REJECTS_DIR).glob("input-*.jsonl")):
        rejects += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return rows, rejects
