"""The augment Beam pipeline: labelled shards in, noisy and noise-only shards out (sections 5.2,
5.6), with the common run report plus the augment report (SNR histogram, spectrograms)."""

from __future__ import annotations

import json
from pathlib import Path

from funfactory.config import config_sha256, dump_config
from funfactory.errors import FunfactoryError
from funfactory.pipelines.augment.config import AugmentConfig


def run_augment(inputs, out_dir: str | Path, config: AugmentConfig, options=None,
                report: bool = True, restart: bool = False, echo=print):
    """Augment the shards at `inputs` (folder, glob, brace pattern or list) into `out_dir`;
    `options` are Beam PipelineOptions (`pipelines.common.runner.beam_options`). Returns a
    `ShardwiseResult` whose `summary` holds the SNR statistics."""
    from funfactory.pipelines.augment.noise_corpus import NoiseCorpus
    from funfactory.pipelines.augment.shardwise import run_shardwise
    from funfactory.pipelines.common.executor import REPORT_DIR
    from funfactory.shards import storage
    from funfactory.pipelines.augment.transforms import augment_units_fn
    from funfactory.shards.reader import expand_urls

    urls = expand_urls(inputs)
    if not urls:
        raise FunfactoryError(f"no input shards at {inputs}")
    if config.noise.split not in ("train", "test"):
        raise FunfactoryError(f"noise.split {config.noise.split!r} must be 'train' or 'test'")
    if config.noise.split == "test" and config.split == "train":
        raise FunfactoryError("noise.split=test would put test-time noise into training shards "
                              "(split=train); set split to the test set's name, e.g. split=test")
    out = storage.url_of(out_dir)
    corpus = NoiseCorpus.from_sources(config.noise.sources)
    corpus.select(config.noise.split)
    sha = config_sha256(config)
    result = run_shardwise("augment", urls, out, augment_units_fn(config, sha),
                           dataset=config.dataset, split=config.split,
                           max_count=config.max_count, config_sha256=sha,
                           options=options, restart=restart, echo=echo)
    reports = storage.join(out, REPORT_DIR)
    storage.write_bytes(storage.join(reports, "noise-manifest.jsonl"), "".join(
        json.dumps(r, ensure_ascii=False) + "\n" for r in corpus.manifest_rows()).encode("utf-8"))
    storage.write_bytes(storage.join(reports, "augment-config.yaml"),
                        dump_config(config).encode("utf-8"))
    if report:
        from funfactory.pipelines.augment.report import write_report

        result.summary = write_report(out, reports, urls, result.rows, result.rejects,
                                             config)
    return result
