"""The Parquet index: one row per sample, read by stats, sampling, leakage checks and resharding
without opening a tar (docs/architecture.md, the shard contract).

Each shard's writer leaves a fragment `_index/{shard}.parquet` after the tar, carrying the tar's
size and sha256; `merge_index` checks them and joins a split's fragments into
`{dataset}-{split}.parquet` beside the shards, so many workers can write shards of one split with
no shared state but the output folder (local or any fsspec URL, `funfactory.shards.storage`), and
the index never describes bytes that are not there.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from funfactory.errors import FunfactoryError
from funfactory.shards import storage

FRAGMENTS = "_index"
TAR_SIZE = "funfactory.tar_size"
TAR_SHA256 = "funfactory.tar_sha256"

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


def index_path(out_dir: str | Path, dataset: str, split: str) -> Path | str:
    return storage.as_location(storage.join(out_dir, f"{dataset}-{split}.parquet"))


def fragment_path(out_dir: str | Path, shard: str) -> str:
    return storage.join(out_dir, FRAGMENTS, storage.name_of(shard).removesuffix(".tar")
                        + ".parquet")


def write_table(table: pa.Table, location: str | Path) -> Path | str:
    """Write a Parquet table through :func:`funfactory.shards.storage.open_write` (whole or not
    at all, on any storage)."""
    with storage.open_write(location) as f:
        pq.write_table(table, f)
    return storage.as_location(location)


def write_fragment(out_dir: str | Path, shard: str, rows: list[dict], tar_size: int,
                   tar_sha256: str) -> Path | str:
    """Write the index rows of one complete shard, with the tar's size and sha256 in the file's
    metadata; written after the tar, so it is the shard's commit marker."""
    table = pa.Table.from_pylist(rows, schema=INDEX_SCHEMA).replace_schema_metadata(
        {TAR_SIZE: str(tar_size), TAR_SHA256: tar_sha256})
    return write_table(table, fragment_path(out_dir, shard))


def fragment_tar_sha256(out_dir: str | Path, shard: str) -> str | None:
    """The tar sha256 that shard ``shard``'s fragment records, or None (no fragment)."""
    fragment = fragment_path(out_dir, shard)
    if not storage.exists(fragment):
        return None
    with storage.open_read(fragment) as f:
        value = (pq.read_schema(f).metadata or {}).get(TAR_SHA256.encode())
    return value.decode() if value is not None else None


def fragment_problem(out_dir: str | Path, shard: str, check_sha256: bool = True,
                     trusted_sha256: str | None = None) -> str | None:
    """Why shard ``shard``'s fragment does not describe the tar that is there, or None. The tar
    is hashed unless the fragment records ``trusted_sha256``: a sha256 the caller itself computed
    or checked on these bytes (the size is checked either way)."""
    fragment, tar = fragment_path(out_dir, shard), storage.join(out_dir, storage.name_of(shard))
    if not storage.exists(fragment):
        return "no index fragment"
    if not storage.exists(tar):
        return "index fragment without its tar"
    with storage.open_read(fragment) as f:
        metadata = pq.read_schema(f).metadata or {}
    want_size = metadata.get(TAR_SIZE.encode())
    want_sha = metadata.get(TAR_SHA256.encode())
    if want_size is None or want_sha is None:
        return "index fragment carries no tar size and sha256 (written by an older writer)"
    if storage.size(tar) != int(want_size):
        return f"tar is {storage.size(tar)} bytes, its fragment says {int(want_size)}"
    if check_sha256 and want_sha.decode() != trusted_sha256 \
            and storage.sha256_of(tar) != want_sha.decode():
        return "tar's sha256 differs from its fragment's"
    return None


def merge_index(out_dir: str | Path, dataset: str, split: str,
                trusted: dict[str, str] | None = None) -> Path | str:
    """Join the fragments of every shard `{dataset}-{split}-*.tar` into the split's index, after
    checking each fragment's tar size and sha256; a fragment that does not match its tar (a crash
    between the tar and its fragment, a shard changed by hand) is an error naming the shard.
    ``trusted`` maps shard names to sha256 the caller computed or checked on their bytes: those
    shards are not read again (their size still is checked)."""
    pattern = f"{dataset}-{split}-[0-9][0-9][0-9][0-9][0-9][0-9].parquet"
    fragments = storage.glob(storage.join(out_dir, FRAGMENTS, pattern))
    tables, problems = [], []
    for fragment in fragments:
        shard = storage.name_of(fragment).removesuffix(".parquet") + ".tar"
        if not storage.exists(storage.join(out_dir, shard)):
            continue
        problem = fragment_problem(out_dir, shard, trusted_sha256=(trusted or {}).get(shard))
        if problem:
            problems.append(f"{shard}: {problem}")
            continue
        with storage.open_read(fragment) as f:
            tables.append(pq.read_table(f, schema=INDEX_SCHEMA).replace_schema_metadata(None))
    if problems:
        raise FunfactoryError(f"index of {out_dir} not merged, fragments do not match their "
                              f"shards: {problems}; rerun the job that wrote them (it rewrites "
                              "such shards) or delete those shards and their fragments")
    table = pa.concat_tables(tables) if tables else INDEX_SCHEMA.empty_table()
    return write_table(table, index_path(out_dir, dataset, split))


def find_indexes(location: str | Path) -> list[str]:
    """The index files of a shard folder (every split), or the one file given."""
    if str(location).endswith(".parquet") and storage.exists(location):
        return [storage.url_of(location)]
    if not storage.is_dir(location):
        raise FunfactoryError(f"{location} is neither a shard folder nor an index file")
    return storage.glob(storage.join(location, "*.parquet"))


def read_index(location: str | Path) -> pa.Table:
    """All index rows of a shard folder (every split) or of one index file."""
    paths = find_indexes(location)
    if not paths:
        raise FunfactoryError(f"no index (*.parquet) in {location}: was it written by "
                              "funfactory's ShardWriter? Run the writer's close() to merge it")
    tables = []
    for path in paths:
        with storage.open_read(path) as f:
            tables.append(pq.read_table(f, schema=INDEX_SCHEMA))
    return pa.concat_tables(tables)
