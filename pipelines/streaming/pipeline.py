"""The streaming simulation Beam pipeline: labelled shards in, chunked-prefix shards out
(section 5.1), with a JSON summary."""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from pathlib import Path

from funfactory.config import config_sha256, dump_config
from funfactory.errors import FunfactoryError
from funfactory.pipelines.streaming.config import StreamingConfig


@dataclass
class StreamingResult:
    out_dir: Path
    rows: list[dict]
    rejects: list[dict]
    report: dict


def summarize(rows: list[dict], rejects: list[dict]) -> dict:
    parents = {r["parent_key"] for r in rows}
    chunks_total = sum({r["parent_key"]: r["num_chunks"] for r in rows}.values())
    return {
        "utterances": len(parents), "prefix_samples": len(rows),
        "prefixes_without_text_skipped": chunks_total - len(rows),
        "mean_prefixes_per_utterance": round(len(rows) / len(parents), 3) if parents else 0,
        "hours": round(sum(r["duration"] for r in rows) / 3600, 4),
        "rejects": dict(collections.Counter(r["reason"] for r in rejects)),
    }


def run_streaming(inputs, out_dir: str | Path, config: StreamingConfig,
                  beam_args: list[str] | None = None) -> StreamingResult:
    from funfactory.pipelines.augment.shardwise import run_shardwise
    from funfactory.pipelines.streaming.transforms import streaming_shards_fn
    from funfactory.shards.reader import expand_urls

    urls = expand_urls(inputs)
    if not urls:
        raise FunfactoryError(f"no input shards at {inputs}")
    if "*" not in config.aligners:
        raise FunfactoryError("streaming aligners need a '*' fallback entry, e.g. "
                              "aligners: {en: whisper-tiny-en, '*': whisper-base}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "streaming-config.yaml").write_text(dump_config(config), encoding="utf-8")
    fn = streaming_shards_fn(config, str(out), config_sha256(config))
    rows, rejects = run_shardwise(urls, out, fn, config.dataset, config.split, beam_args)
    report = summarize(rows, rejects)
    (out / "streaming-report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return StreamingResult(out, rows, rejects, report)
