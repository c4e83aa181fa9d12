"""The RL data pipeline on Beam (Fun-ASR section 4.4.3): labelled shards in, balanced RL shards out.

Two passes over the input shards, each with the input shard as the resumable unit:

1. **classify** (`ClassifyShard`): each sample's current-model hypothesis (decoded with the model
   folder given, batched, the model loaded once per worker in `setup`; or read from
   ``labels[config.model_label]``) and its subset (`select.classify`). One JSON-lines file per
   input shard under ``OUT/_rl/classes/``, written atomically: a rerun skips finished shards.
2. **select and write**: the driver reads the classifications, sets equal shares
   (`select.select`), and the shared shard-to-shards job (`pipelines.augment.shardwise`, on
   `pipelines.common`) copies every kept sample with its ``rl`` tag (subset, the subsets it
   qualifies for, the figures behind them) and puts every other input in the rejects table with
   the reason ``not_selected`` (its subset's equal share was full). Shards, index, rejects and the
   run report land as in the other pipelines; ``OUT/_reports/rl-selection.json`` holds the counts.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam

from funfactory import __version__
from funfactory.config import config_sha256
from funfactory.errors import FunfactoryError
from funfactory.pipelines.common.runner import beam_options, decoder_threads, run_and_wait
from funfactory.pipelines.rl.config import RLDataConfig
from funfactory.pipelines.rl.select import Classification, classify, select
from funfactory.shards import storage

CLASSES_DIR = "_rl/classes"


class ClassifyShard(beam.DoFn):
    """(unit id, shard url) -> writes the unit's classifications; yields (unit, count)."""

    def __init__(self, config: RLDataConfig, classes_dir: str, model_dir: str | None,
                 threads: int):
        self.config, self.classes_dir, self.model_dir = config, classes_dir, model_dir
        self.threads = threads  # the decoder's (`decoder_threads` of the job's options)

    def setup(self):
        self.model = None
        if self.model_dir:
            import torch

            from funfactory.model.checkpoint import load_model

            # one decoder per Beam worker (an in-process runner shares the caller's torch: the
            # job gives the caller its count back)
            torch.set_num_threads(self.threads)
            self.model = load_model(self.model_dir)

    def _hypotheses(self, samples) -> list[str | None]:
        if self.model is None:
            labels = [(s.meta.get("labels") or {}).get(self.config.model_label) for s in samples]
            return [entry.get("text") if isinstance(entry, dict) else None for entry in labels]
        from funfactory.model.decode import DecodeOptions, transcribe

        options = DecodeOptions(max_new_tokens=self.config.max_new_tokens)
        out: list[str | None] = []
        for start in range(0, len(samples), self.config.decode_batch):
            chunk = samples[start:start + self.config.decode_batch]
            out += [t.text for t in transcribe(self.model, [s.audio for s in chunk], options,
                                               prompts=[s.meta.get("prompt") for s in chunk])]
        return out

    def process(self, element):
        from funfactory.shards.reader import ShardReader

        unit, url = element
        target = storage.join(self.classes_dir, f"{unit}.jsonl")
        started = time.perf_counter()
        samples = list(ShardReader(url))
        lines = []
        for sample, hypothesis in zip(samples, self._hypotheses(samples)):
            c = classify(sample.meta, hypothesis, self.config)
            beam.metrics.Metrics.counter("rl", f"candidates_{c.subset}").inc()
            lines.append(json.dumps({"key": c.key, "subset": c.subset, "qualifies": c.qualifies,
                                     "figures": c.figures}, ensure_ascii=False))
        storage.write_bytes(target, "".join(line + "\n" for line in lines).encode("utf-8"))
        beam.metrics.Metrics.distribution("rl", "classify_ms").update(
            int(1000 * (time.perf_counter() - started)))
        yield unit, len(lines)


def read_classifications(classes_dir, units: list[str]) -> list[Classification]:
    out = []
    for unit in units:
        path = storage.join(classes_dir, f"{unit}.jsonl")
        if not storage.exists(path):
            raise FunfactoryError(f"input shard unit {unit} has no classification at {path}: "
                                  "rerun the pipeline to finish the classify pass")
        for line in storage.read_bytes(path).decode("utf-8").splitlines():
            row = json.loads(line)
            out.append(Classification(row["key"], row["subset"], row["qualifies"], row["figures"]))
    return out


@dataclass
class RLTagger:
    """The deriver of the write pass: kept samples get their `rl` tag, the rest are rejected."""
    kept: dict[str, dict]
    subsets: dict[str, str]
    config_sha256: str

    def derive(self, meta: dict, audio):
        from funfactory.pipelines.augment.samples import Derived, Rejected

        key = meta["key"]
        if key not in self.kept:
            subset = self.subsets.get(key)
            if subset is None:
                return [], [Rejected(key, "unclassified", "no classification for this sample")]
            return [], [Rejected(key, "not_selected",
                                 f"subset {subset!r} is over its equal share")]
        tagged = dict(meta)
        tagged["rl"] = self.kept[key]
        tagged["lineage"] = {"pipeline": "rl", "version": __version__,
                             "config_sha256": self.config_sha256,
                             "parent": meta.get("lineage")}
        return [Derived(tagged, audio)], []


def _row_of(meta: dict) -> dict:
    return {"key": meta["key"], "subset": meta["rl"]["subset"], "duration": meta["duration"]}


def run_rl_data(inputs, out_dir: str | Path, config: RLDataConfig | None = None,
                model_dir: str | Path | None = None, options=None, restart: bool = False,
                echo=print):
    """Build the RL set from the shards at `inputs` into `out_dir`; returns the shardwise result
    with `summary` = the selection counts."""
    from funfactory.pipelines.augment.shardwise import DeriveUnits, run_shardwise, unit_id
    from funfactory.pipelines.common.executor import REPORT_DIR
    from funfactory.shards.reader import expand_urls

    config = config or RLDataConfig()
    if sorted(config.priority) != sorted(["hard", "long", "hallucination", "keyword", "regular"]):
        raise FunfactoryError(f"priority {config.priority} must order all five subsets")
    urls = expand_urls(inputs)
    if not urls:
        raise FunfactoryError(f"no input shards at {inputs}")
    out = storage.url_of(out_dir)
    classes_dir = storage.join(out, CLASSES_DIR)
    if restart:
        storage.remove_tree(classes_dir)
    storage.makedirs(classes_dir)
    units = {unit_id(u): u for u in urls}
    done = {storage.name_of(p).removesuffix(".jsonl")
            for p in storage.glob(storage.join(classes_dir, "*.jsonl"))}
    todo = [(uid, url) for uid, url in sorted(units.items()) if uid not in done]
    echo(f"[rl] classify: {len(units)} input shards, {len(units) - len(todo)} already done")
    if todo:
        p = beam.Pipeline(options=options or beam_options())
        classify = ClassifyShard(config, classes_dir, str(model_dir) if model_dir else None,
                                 decoder_threads(p.options))
        _ = (p | "InputShards" >> beam.Create(todo, reshuffle=False)
               | "Spread" >> beam.Reshuffle()
               | "Classify" >> beam.ParDo(classify))
        import torch

        # not each worker's teardown: in-process workers' setups and teardowns interleave
        threads = torch.get_num_threads()
        try:
            run_and_wait(p)
        finally:
            torch.set_num_threads(threads)
    classes = read_classifications(classes_dir, sorted(units))
    kept, summary = select(classes, config)
    digest = hashlib.sha256(json.dumps(sorted(kept), ensure_ascii=False).encode()).hexdigest()
    sha = hashlib.sha256(f"{config_sha256(config)}|{model_dir}|{digest}".encode()).hexdigest()
    tagger = RLTagger({k: c.tag() for k, c in kept.items()}, {c.key: c.subset for c in classes},
                      sha)
    fn = DeriveUnits("rl", lambda: tagger, _row_of)
    result = run_shardwise("rl", urls, out, fn, dataset=config.dataset, split=config.split,
                           max_count=config.max_count, config_sha256=sha, options=options,
                           restart=restart, echo=echo, units=units)
    summary["samples"] = len(result.rows)
    storage.write_json(storage.join(out, REPORT_DIR, "rl-selection.json"), summary)
    echo(f"[rl] candidates {summary['candidates']}; kept {summary['kept']}"
         + (f"; no samples for {summary['missing_subsets']}" if summary["missing_subsets"] else ""))
    result.summary = summary
    return result
