"""The augment Beam pipeline: labelled shards in, noisy and noise-only shards out (sections 5.2,
5.6), with a run report (counts, SNR histogram, spectrograms)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from funfactory.config import config_sha256, dump_config
from funfactory.errors import FunfactoryError
from funfactory.pipelines.augment.config import AugmentConfig
from funfactory.pipelines.augment.transforms import DONE_DIR, REJECTS_DIR, AugmentShardFn

log = logging.getLogger(__name__)


@dataclass
class AugmentResult:
    out_dir: Path
    rows: list[dict]
    rejects: list[dict]
    report: dict


def run_augment(inputs, out_dir: str | Path, config: AugmentConfig,
                beam_args: list[str] | None = None, report: bool = True) -> AugmentResult:
    """Augment the shards at `inputs` (folder, glob, brace pattern or list) into `out_dir`."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from funfactory.pipelines.augment.noise_corpus import NoiseCorpus
    from funfactory.shards.index import merge_index
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
    sha = config_sha256(config)
    options = PipelineOptions(beam_args or [])
    with beam.Pipeline(options=options) as p:
        _ = (p | "InputShards" >> beam.Create(list(enumerate(urls)))
               | "Augment" >> beam.ParDo(AugmentShardFn(config, str(out), sha)))
    merge_index(out, config.dataset, config.split)
    rows, rejects = collect_rows(out)
    summary = {}
    if report:
        from funfactory.pipelines.augment.report import write_report

        summary = write_report(out, urls, rows, rejects, config)
    return AugmentResult(out, rows, rejects, summary)


def collect_rows(out_dir: Path) -> tuple[list[dict], list[dict]]:
    rows, rejects = [], []
    for marker in sorted((out_dir / DONE_DIR).glob("input-*.json")):
        rows += json.loads(marker.read_text(encoding="utf-8"))["rows"]
    for path in sorted((out_dir / REJECTS_DIR).glob("input-*.jsonl")):
        rejects += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return rows, rejects
