"""The sample schema (version 1): the JSON that travels beside every clip.

Field names follow the shard contract (docs/architecture.md). `validate_meta` returns every problem it finds, so
`shards verify` can list them all; `check_meta` raises on the first write or read that breaks it.
"""

from __future__ import annotations

import re
from typing import Any

from funfactory.errors import FunfactoryError

SCHEMA_VERSION = 1
SAMPLE_RATE = 16000

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
LANGUAGE_PATTERN = re.compile(r"^([a-z]{2,3}(-[a-z]{2,3})*)?$")
TASKS = frozenset({
    "asr", "context", "hotword", "codeswitch", "noise_only", "streaming", "rl", "test",
    "unlabelled",
})
# Tasks whose label may legitimately be empty (section 5.6: noise-only samples teach silence).
EMPTY_TEXT_TASKS = frozenset({"noise_only", "unlabelled"})

REQUIRED: dict[str, type | tuple[type, ...]] = {
    "schema": int, "key": str, "text": str, "raw_text": str, "language": str,
    "duration": (int, float), "sample_rate": int, "task": str, "prompt": dict, "source": dict,
    "labels": (dict, type(None)), "augment": (dict, type(None)), "stream": (dict, type(None)),
    "lineage": dict,
}
PROMPT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "context": list, "hotwords": list, "previous_text": (str, type(None)),
}
SOURCE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str, "uri": str, "offset": (int, float), "published_at": (str, type(None)),
}
LINEAGE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "pipeline": str, "version": str, "config_sha256": str,
}
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}")


def label_estimated_wer(meta: dict) -> float | None:
    """``labels.estimated_wer``: the label's estimated error rate, where pseudo-labelling set one
    (also the index column ``label_estimated_wer``, so a trainer can filter or weight samples
    without opening the tars); None when absent or not a number >= 0."""
    value = (meta.get("labels") or {}).get("estimated_wer")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        return None
    return float(value)


class SchemaError(FunfactoryError):
    """A sample's JSON breaks the contract; the message lists every problem."""


def _check_fields(meta: dict, fields: dict, where: str, problems: list[str]) -> None:
    for name, kind in fields.items():
        if name not in meta:
            problems.append(f"{where}{name}: missing")
        elif isinstance(meta[name], bool) and kind in (int, (int, float)):
            problems.append(f"{where}{name}: expected a number, got a boolean")
        elif not isinstance(meta[name], kind):
            problems.append(f"{where}{name}: expected {_kind_name(kind)}, "
                            f"got {type(meta[name]).__name__}")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("null" if k is type(None) else k.__name__ for k in kinds)


def validate_meta(meta: Any) -> list[str]:
    """Every way `meta` breaks schema version 1; an empty list means it is valid."""
    if not isinstance(meta, dict):
        return [f"sample JSON must be an object, got {type(meta).__name__}"]
    problems: list[str] = []
    _check_fields(meta, REQUIRED, "", problems)
    if problems:
        return problems
    if meta["schema"] != SCHEMA_VERSION:
        problems.append(f"schema: version {meta['schema']} is not {SCHEMA_VERSION}")
    if not KEY_PATTERN.match(meta["key"]):
        problems.append(f"key: {meta['key']!r} must be 1-200 of [A-Za-z0-9_-] (no dots: "
                        "WebDataset splits keys on the first dot)")
    if not LANGUAGE_PATTERN.match(meta["language"]):
        problems.append(f"language: {meta['language']!r} is not a code like 'zh', 'en', 'zh-en'")
    if meta["task"] not in TASKS:
        problems.append(f"task: {meta['task']!r} is not one of {sorted(TASKS)}")
    if not meta["duration"] > 0:
        problems.append(f"duration: {meta['duration']} must be positive")
    if meta["sample_rate"] != SAMPLE_RATE:
        problems.append(f"sample_rate: {meta['sample_rate']} must be {SAMPLE_RATE}")
    if not meta["text"].strip() and meta["task"] not in EMPTY_TEXT_TASKS:
        problems.append(f"text: empty, which only tasks {sorted(EMPTY_TEXT_TASKS)} allow")
    _check_fields(meta["prompt"], PROMPT_FIELDS, "prompt.", problems)
    _check_fields(meta["source"], SOURCE_FIELDS, "source.", problems)
    _check_fields(meta["lineage"], LINEAGE_FIELDS, "lineage.", problems)
    published = meta["source"].get("published_at")
    if isinstance(published, str) and not DATE_PATTERN.match(published):
        problems.append(f"source.published_at: {published!r} is not an ISO date (YYYY-MM-DD)")
    estimated = label_estimated_wer(meta)
    if (meta["labels"] or {}).get("estimated_wer") is not None and estimated is None:
        problems.append(f"labels.estimated_wer: {meta['labels']['estimated_wer']!r} must be a "
                        "number >= 0 (the chosen label's estimated error rate)")
    return problems


def check_meta(meta: Any, where: str = "sample") -> dict:
    """Return `meta` if valid, else raise SchemaError naming `where` and every problem."""
    problems = validate_meta(meta)
    if problems:
        raise SchemaError(f"{where} breaks shard schema v{SCHEMA_VERSION}: " + "; ".join(problems))
    return meta


def new_meta(*, key: str, text: str, language: str, duration: float, task: str = "asr",
             raw_text: str | None = None, source_id: str, uri: str, offset: float = 0.0,
             published_at: str | None = None, pipeline: str, version: str,
             config_sha256: str, **extra: Any) -> dict:
    """A schema-v1 sample JSON with every required field; `extra` adds or overrides fields."""
    meta: dict[str, Any] = {
        "schema": SCHEMA_VERSION, "key": key, "text": text,
        "raw_text": text if raw_text is None else raw_text, "language": language,
        "duration": round(float(duration), 4), "sample_rate": SAMPLE_RATE, "task": task,
        "prompt": {"context": [], "hotwords": [], "previous_text": None},
        "source": {"id": source_id, "uri": uri, "offset": round(float(offset), 4),
                   "published_at": published_at},
        "labels": None, "augment": None, "stream": None,
        "lineage": {"pipeline": pipeline, "version": version, "config_sha256": config_sha256},
    }
    meta.update(extra)
    return meta
