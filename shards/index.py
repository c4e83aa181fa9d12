"""The Parquet index: one row per sample, read by stats, sampling, leakage checks and resharding
without opening a tar (DESIGN.md, the data contract).

Each shard's writer leaves a fragment `_index/{shard}.parquet`; `merge_index` joins a split's
fragments into `{dataset}-{split}.parquet` beside the shards, so many workers can write shards of
one split with no shared state but the output folder.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from funfactory.errors import FunfactoryError

FRAGMENTS = "_index"

INDEX_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("shard", pa.string()),
    ("json_offset", pa.int64()),
    ("json_size", pa.int64()),
    ("audio_offset", pa.int64()),
    ("audio_size", pa.int64()),
    ("duration", pa.float64()),
    ("language", pa.string()),
    ("task", pa.string()),
    ("text", pa.string()),
    ("audio_sha256", pa.string()),
    ("source_id", pa.string()),
    ("published_at", pa.string()),
    ("label_estimated_wer", pa.float64()),  # labels.estimated_wer; null where not pseudo-labelled
])


def index_path(out_dir: str | Path, dataset: str, split: str) -> Path:
    return Path(out_dir) / f"{dataset}-{split}.parquet"


def fragment_path(out_dir: str | Path, shard: str) -> Path:
    return Path(out_dir) / FRAGMENTS / (Path(shard).stem + ".parquet")


def write_fragment(out_dir: str | Path, shard: str, rows: list[dict]) -> Path:
    """Write the index rows of one complete shard, atomically."""
    path = fragment_path(out_dir, shard)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".partial")
    pq.write_table(pa.Table.from_pylist(rows, schema=INDEX_SCHEMA), tmp)
    tmp.replace(path)
    return path


def merge_index(out_dir: str | Path, dataset: str, split: str) -> Path:
    """Join the fragments of every shard `{dataset}-{split}-*.tar` into the split's index."""
    out_dir = Path(out_dir)
    fragments = sorted((out_dir / FRAGMENTS).glob(f"{dataset}-{split}-[0-9][0-9][0-9][0-9][0-9][0-9].parquet"))
    tables = [pq.read_table(f, schema=INDEX_SCHEMA) for f in fragments
              if (out_dir / (f.stem + ".tar")).exists()]
    table = pa.concat_tables(tables) if tables else INDEX_SCHEMA.empty_table()
    path = index_path(out_dir, dataset, split)
    tmp = path.with_name("." + path.name + ".partial")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def find_indexes(location: str | Path) -> list[Path]:
    """The index files of a shard folder (every split), or the one file given."""
    location = Path(location)
    if location.is_file():
        return [location]
    if not location.is_dir():
        raise FunfactoryError(f"{location} is neither a shard folder nor an index file")
    return sorted(p for p in location.glob("*.parquet") if not p.name.startswith("."))


def read_index(location: str | Path) -> pa.Table:
    """All index rows of a shard folder (every split) or of one index file."""
    paths = find_indexes(location)
    if not paths:
        raise FunfactoryError(f"no index (*.parquet) in {location}: was it written by "
                              "funfactory's ShardWriter? Run the writer's close() to merge it")
    return pa.concat_tables([pq.read_table(p, schema=INDEX_SCHEMA) for p in paths])
