"""The streaming simulation Beam pipeline: labelled shards in, chunked-prefix shards out
(section 5.1), with the common run report plus a streaming summary."""

from __future__ import annotations

from pathlib import Path

from funfactory.config import config_sha256, dump_config
from funfactory.errors import FunfactoryError
from funfactory.pipelines.streaming.config import StreamingConfig


def summarize(rows: list[dict]) -> dict:
    parents = {r["parent_key"] for r in rows}
    chunks_total = sum({r["parent_key"]: r["num_chunks"] for r in rows}.values())
    return {
        "utterances": len(parents), "prefix_samples": len(rows),
        "prefixes_without_text_skipped": chunks_total - len(rows),
        "mean_prefixes_per_utterance": round(len(rows) / len(parents), 3) if parents else 0,
        "hours": round(sum(r["duration"] for r in rows) / 3600, 4),
    }


def run_streaming(inputs, out_dir: str | Path, config: StreamingConfig, options=None,
                  restart: bool = False, echo=print):
    """Write chunked prefixes of every labelled utterance at `inputs` into `out_dir`; returns a
    `ShardwiseResult` (its `summary` counts prefixes)."""
    from funfactory.pipelines.augment.shardwise import run_shardwise
    from funfactory.pipelines.common.executor import REPORT_DIR
    from funfactory.shards import storage
    from funfactory.pipelines.streaming.transforms import streaming_units_fn
    from funfactory.shards.reader import expand_urls

    urls = expand_urls(inputs)
    if not urls:
        raise FunfactoryError(f"no input shards at {inputs}")
    if "*" not in config.aligners:
        raise FunfactoryError("streaming aligners need a '*' fallback entry, e.g. "
                              "aligners: {en: whisper-tiny-en, '*': whisper-base}")
    out = storage.url_of(out_dir)
    sha = config_sha256(config)
    result = run_shardwise("streaming", urls, out, streaming_units_fn(config, sha),
                           dataset=config.dataset, split=config.split,
                           max_count=config.max_count, config_sha256=sha,
                           options=options, restart=restart, echo=echo)
    result.summary = summarize(result.rows)
    reports = storage.join(out, REPORT_DIR)
    storage.write_bytes(storage.join(reports, "streaming-config.yaml"),
                        dump_config(config).encode("utf-8"))
    storage.write_json(storage.join(reports, "streaming-summary.json"), result.summary)
    return result
