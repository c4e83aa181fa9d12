"""The rejects table: one Parquet row per input file or segment that did not reach a shard.

"Nothing lost" (docs/architecture.md, the executor): every input ends in a shard or here, with the stage that
rejected it and why. Columns (``REJECTS_SCHEMA``): ``unit`` (the resumable unit, e.g. a source
id), ``key`` (segment key, or null for a whole file), ``stage`` (ingest, vad, label, vote, filter,
...), ``reason`` (a short machine-readable code: ``corrupt_file``, ``no_speech``,
``low_agreement``...), ``detail`` (human text), ``uri``, ``offset`` and ``duration`` (seconds in
the source; null when unknown).

Build rows with :func:`reject_row`; :func:`write_rejects` writes them sorted (unit, offset, key),
so the same run gives the same table.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from funfactory.shards import storage
from funfactory.shards.index import write_table

REJECTS_SCHEMA = pa.schema([
    ("unit", pa.string()),
    ("key", pa.string()),
    ("stage", pa.string()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("uri", pa.string()),
    ("offset", pa.float64()),
    ("duration", pa.float64()),
])


def reject_row(*, unit: str, stage: str, reason: str, detail: str = "", uri: str = "",
               key: str | None = None, offset: float | None = None,
               duration: float | None = None) -> dict:
    return {"unit": unit, "key": key, "stage": stage, "reason": reason, "detail": detail[:2000],
            "uri": uri, "offset": None if offset is None else round(float(offset), 4),
            "duration": None if duration is None else round(float(duration), 4)}


def _sort_key(row: dict):
    return (row["unit"], row["offset"] if row["offset"] is not None else -1.0, row["key"] or "")


def write_rejects(rows: list[dict], path: str | Path) -> Path | str:
    """Write ``rows`` (dicts with the schema's columns; extra keys ignored) whole or not at all,
    to a local path or URL."""
    clean = [{name: row.get(name) for name in REJECTS_SCHEMA.names} for row in rows]
    return write_table(pa.Table.from_pylist(sorted(clean, key=_sort_key), schema=REJECTS_SCHEMA),
                       path)


def read_rejects(path: str | Path) -> list[dict]:
    with storage.open_read(path) as f:
        return pq.read_table(f, schema=REJECTS_SCHEMA).to_pylist()


def count_by_reason(rows: list[dict]) -> dict[str, int]:
    return dict(sorted(Counter(f"{r['stage']}/{r['reason']}" for r in rows).items()))
