"""Deterministic, dot-free sample keys and shard names (docs/architecture.md, the shard contract)."""

from __future__ import annotations

import hashlib
import re

SHARD_NAME = re.compile(r"^(?P<dataset>[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*?)-(?P<split>[A-Za-z0-9_]+)"
                        r"-(?P<index>\d{6})\.tar$")


def source_id(uri: str) -> str:
    """A stable id for a source recording: 'src' + 10 hex digits of sha1(uri)."""
    return "src" + hashlib.sha1(uri.encode("utf-8")).hexdigest()[:10]


def segment_key(source: str, index: int, suffix: str = "") -> str:
    """Key of the `index`-th segment of `source`, e.g. 'src3f9a-seg00012'; `suffix` marks variants
    (augmented copies, streaming prefixes) as 'src3f9a-seg00012-noise'."""
    key = f"{source}-seg{index:05d}"
    if suffix:
        key += "-" + re.sub(r"[^A-Za-z0-9_-]", "_", suffix)
    return key


def shard_name(dataset: str, split: str, index: int) -> str:
    for part, value in (("dataset", dataset), ("split", split)):
        if not value or not re.fullmatch(r"[A-Za-z0-9_-]+", value) or (
                part == "split" and "-" in value):
            raise ValueError(f"{part} name {value!r} must be letters, digits and '_' "
                             f"{'' if part == 'split' else 'or -'} only")
    return f"{dataset}-{split}-{index:06d}.tar"


def parse_shard_name(name: str) -> tuple[str, str, int] | None:
    m = SHARD_NAME.match(name.rsplit("/", 1)[-1])
    return (m["dataset"], m["split"], int(m["index"])) if m else None
