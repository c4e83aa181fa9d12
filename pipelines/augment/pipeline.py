"""The augment Beam pipeline: labelled shards in, noisy and noise-only shards out (sections 5.2,
5.6), with a run report (counts, SNR histogram, spectrograms)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from funfactory.config import config_sha256, dump_config
from funfactory.errors import FunfactoryError
from funfactory.pipelines.augment.config import AugmentConfig
from funfactory.pipelines.augment.shardwise import run_shardwise
from funfactory.pipelines.augment.transforms import augment_shards_fn


@dataclass
class AugmentResult:
    out_dir: Path
    rows: list[dict]
    rejects: list[dict]
    report: dict


def run_augment(inputs, out_dir: str | Path, config: AugmentConfig,
                beam_args: list[str] | None = None, report: bool = True) -> AugmentResult:
    """Augment the shards at `inputs` (folder, glob, brace pattern or list) into `out_dir`."""
    from funfactory.pipelines.augment.noise_corpus import NoiseCorpus
    from funfactory.shards.reader import expand_urls

    urls = expand_urls(inputs)
    if not urls:
        raise FunfactoryError(f"no input shards at {inputs}")
    if config.noise.split not in ("train", "test"):
        raise FunfactoryError(f"noise.split {config.noise.split!r} must be 'train' or 'test'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus = NoiseCorpus.from_sources(config.noise.sources, config.noise.test_fraction,
                                      config.noise.split_salt)
    (out / "noise-manifest.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in corpus.manifest_rows()),
        encoding="utf-8")
    (out / "augment-config.yaml").write_text(dump_config(config), encoding="utf-8")
    fn = augment_shards_fn(config, str(out), config_sha256(config))
    rows, rejects = run_shardwise(urls, out, fn, config.dataset, config.split, beam_args)
    summary = {}
    if report:
        from funfactory.pipelines.augment.report import write_report

        summary = write_report(out, urls, rows, rejects, config)
    return AugmentResult(out, rows, rejects, summary)

