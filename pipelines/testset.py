"""Leakage-free test sets: date cutoff, dedup against training, export, import (section 6.1).

Fun-ASR report section 6.1: "to avoid data leakage, the test sets are built from media published
after the training data was collected, and checked for overlap with the training data". Here:

1. **pool** (:func:`load_pool`): a JSONL manifest, one media item per line, or a folder of audio
   files with optional ``NAME.json`` sidecars (or a ``manifest.jsonl`` inside). Fields: ``audio``
   (path, relative to the manifest), ``published_at`` (ISO date), optional ``id``, ``start``,
   ``end`` (seconds), ``text`` (a draft transcript), ``language``.
2. **cutoff** (:func:`split_by_date`): items published strictly after the cutoff go on; items on
   or before it are dropped; items with no date or an unreadable one are *reported* by id and
   not kept (a test set cannot vouch for them).
3. **dedup** (:class:`funfactory.eval.leakage.LeakageIndex`): candidates are indexed by text
   and audio fingerprint, the training shards stream past once, and every candidate with an
   overlap is removed; ``leakage.jsonl`` / ``leakage.md`` list each one with the training items
   it matched and the scores.
4. **export** (:func:`export_for_transcription`): the kept items as ``transcription.csv`` and
   ``transcription.jsonl`` (id, audio, start, end, draft_text, language, published_at, and an
   empty ``text`` column for the transcriber).
5. **import** (:func:`import_transcripts`): the filled-in file back as a test shard set (task
   ``test``; ``text`` in label form, the transcriber's words kept as ``raw_text``).

:func:`check_shards` runs step 3 between two shard sets: a test set against training shards, or
new training shards against a test set before training starts.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from funfactory import __version__
from funfactory.config import config_sha256
from funfactory.errors import FunfactoryError
from funfactory.eval.fingerprint import MIN_VOTE_SHARE, MIN_VOTES, fingerprint
from funfactory.eval.leakage import (
    MIN_TEXT_CHARS,
    TEXT_THRESHOLD,
    Item,
    LeakageIndex,
    group_by_test_item,
    write_leakage_report,
)
from funfactory.eval.textnorm import detect_language, normalize_label

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".opus"})
EXPORT_FIELDS = ("id", "audio", "start", "end", "draft_text", "language", "published_at", "text")
SAMPLE_RATE = 16000


@dataclass
class TestsetConfig:
    __test__ = False  # not a pytest test class despite its name
    cutoff: str = ""  # ISO date; only `build_testset` needs it
    text_threshold: float = TEXT_THRESHOLD
    min_text_chars: int = MIN_TEXT_CHARS
    audio: bool = True
    min_votes: int = MIN_VOTES
    min_vote_share: float = MIN_VOTE_SHARE
    workers: int = 1  # processes decoding and fingerprinting training shards


@dataclass
class PoolItem:
    id: str
    audio: str
    published_at: str | None = None
    start: float = 0.0
    end: float | None = None
    text: str = ""
    language: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _key(raw_id: str) -> str:
    from funfactory.shards.schema import KEY_PATTERN

    if KEY_PATTERN.match(raw_id):
        return raw_id
    return "item" + hashlib.sha1(raw_id.encode("utf-8")).hexdigest()[:12]


def _pool_item(record: dict, base: Path, where: str, counter: dict[str, int]) -> PoolItem:
    from funfactory.shards.keys import segment_key, source_id

    if not isinstance(record, dict) or not isinstance(record.get("audio"), str):
        raise FunfactoryError(f"{where}: each pool item needs an 'audio' path (a string)")
    audio = Path(record["audio"].removeprefix("file://"))
    audio = audio if audio.is_absolute() else base / audio
    start = float(record.get("start") or 0.0)
    end = record.get("end")
    if record.get("id") is not None:
        key = _key(str(record["id"]))
    else:
        source = source_id(audio.resolve().as_uri())
        key = segment_key(source, counter.get(source, 0))
        counter[source] = counter.get(source, 0) + 1
    return PoolItem(id=key, audio=str(audio), published_at=record.get("published_at"),
                    start=start, end=None if end is None else float(end),
                    text=str(record.get("text") or ""), language=str(record.get("language") or ""))


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as e:
                    raise FunfactoryError(f"{path}:{number} is not valid JSON ({e.msg}); "
                                          "a pool manifest has one JSON object per line") from None


def load_pool(location: str | Path) -> list[PoolItem]:
    """Pool items from a JSONL manifest or a folder (module docstring, step 1)."""
    location = Path(location)
    counter: dict[str, int] = {}
    if location.is_dir() and (location / "manifest.jsonl").is_file():
        location = location / "manifest.jsonl"
    if location.is_file():
        items = [_pool_item(record, location.parent, f"{location}:{n}", counter)
                 for n, record in _read_jsonl(location)]
    elif location.is_dir():
        items = []
        for audio in sorted(p for p in location.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES):
            sidecar = audio.with_suffix(".json")
            record = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
            if not isinstance(record, dict):
                raise FunfactoryError(f"{sidecar} must hold a JSON object")
            record.setdefault("id", audio.stem)
            record["audio"] = str(audio)
            items.append(_pool_item(record, location, str(sidecar), counter))
    else:
        raise FunfactoryError(f"pool {location} is neither a JSONL manifest nor a folder of audio")
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise FunfactoryError(f"pool {location}: id {item.id!r} appears twice; ids must be unique")
        seen.add(item.id)
    return items


def parse_date(value) -> dt.date | None:
    """An ISO date (``2025-07-02``, or a timestamp starting with one); None if unreadable."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


@dataclass
class DateSplit:
    after: list[PoolItem] = field(default_factory=list)
    on_or_before: list[PoolItem] = field(default_factory=list)
    undated: list[PoolItem] = field(default_factory=list)
    bad_date: list[PoolItem] = field(default_factory=list)


def split_by_date(items: Iterable[PoolItem], cutoff: str) -> DateSplit:
    """Module docstring, step 2: keep what was published strictly after ``cutoff``."""
    cutoff_date = parse_date(cutoff)
    if cutoff_date is None:
        raise FunfactoryError(f"cutoff {cutoff!r} is not an ISO date: write it as YYYY-MM-DD")
    split = DateSplit()
    for item in items:
        if item.published_at in (None, ""):
            split.undated.append(item)
            continue
        published = parse_date(item.published_at)
        if published is None:
            split.bad_date.append(item)
        elif published > cutoff_date:
            split.after.append(item)
        else:
            split.on_or_before.append(item)
    return split


def load_audio(path: str | Path, start: float = 0.0, end: float | None = None) -> np.ndarray:
    """Mono 16 kHz float32 audio of ``path`` from ``start`` to ``end`` seconds."""
    import soundfile as sf
    import soxr

    try:
        rate = sf.info(str(path)).samplerate
        frames = slice(int(round(start * rate)), None if end is None else int(round(end * rate)))
        audio, rate = sf.read(str(path), start=frames.start, stop=frames.stop, dtype="float32",
                              always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise FunfactoryError(f"cannot read audio {path}: {e}; convert it to WAV, FLAC or MP3") from None
    audio = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(audio, dtype=np.float32)


def _shard_items(url: str, audio: bool) -> list[Item]:
    """One shard's samples as fingerprinted :class:`Item` s (audio itself dropped)."""
    from funfactory.shards.audio import sha256
    from funfactory.shards.reader import ShardReader

    reader = ShardReader(url, decode=audio)
    items = [Item(s.key, text=s.meta.get("text"), audio_sha256=sha256(s.flac),
                  audio_print=fingerprint(s.audio, s.sample_rate) if audio else None)
             for s in reader]
    if reader.errors:
        log.warning("shard %s: unreadable samples skipped: %s", url, dict(reader.errors))
    return items


def shard_items(urls, audio: bool = True, workers: int = 1) -> Iterator[Item]:
    """Every sample of a shard set as a leakage :class:`Item` (text, fingerprint, FLAC sha256),
    shard by shard; ``workers`` > 1 decodes and fingerprints shards in parallel processes."""
    from funfactory.shards.reader import expand_urls

    urls = expand_urls(urls)
    if workers <= 1 or len(urls) <= 1:
        for url in urls:
            yield from _shard_items(url, audio)
        return
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(min(workers, len(urls))) as pool:
        for items in pool.imap(functools.partial(_shard_items, audio=audio), urls):
            yield from items


def _leakage_index(config: TestsetConfig) -> LeakageIndex:
    return LeakageIndex(text_threshold=config.text_threshold, min_text_chars=config.min_text_chars,
                        audio=config.audio, min_votes=config.min_votes,
                        min_vote_share=config.min_vote_share)


@dataclass
class BuildResult:
    kept: list[PoolItem]
    removed: dict[str, list]  # id -> overlaps
    dates: DateSplit
    report: dict


def build_testset(pool: str | Path, train_shards, out_dir: str | Path,
                  config: TestsetConfig) -> BuildResult:
    """Steps 1-4 of the module docstring; writes into ``out_dir``:
    ``kept.jsonl``, ``leakage.jsonl``, ``leakage.md``, ``report.json``, ``transcription.csv``
    and ``transcription.jsonl``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = load_pool(pool)
    dates = split_by_date(items, config.cutoff)
    index = _leakage_index(config)
    for item in dates.after:
        audio = load_audio(item.audio, item.start, item.end) if config.audio else None
        index.add(Item(item.id, text=item.text or None, audio=audio))
    grouped = group_by_test_item(index.scan(shard_items(train_shards, config.audio,
                                                        config.workers)))
    kept = [item for item in dates.after if item.id not in grouped]
    report = {
        "pool": str(pool), "cutoff": config.cutoff, "config": dataclasses.asdict(config),
        "config_sha256": config_sha256(config), "version": __version__,
        "pool_items": len(items), "after_cutoff": len(dates.after),
        "on_or_before_cutoff": len(dates.on_or_before),
        "undated": [i.id for i in dates.undated], "bad_date": [i.id for i in dates.bad_date],
        "training_items_scanned": index.counts["training_items"],
        "text_too_short_to_judge": index.counts["text_too_short"],
        "removed_for_leakage": sorted(grouped), "kept": len(kept),
    }
    with (out_dir / "kept.jsonl").open("w", encoding="utf-8") as f:
        for item in kept:
            f.write(json.dumps(item.as_dict(), ensure_ascii=False) + "\n")
    write_leakage_report(grouped, out_dir, {
        "cutoff": config.cutoff, "candidates after cutoff": len(dates.after),
        "training items scanned": index.counts["training_items"]})
    (out_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n",
                                         encoding="utf-8")
    export_for_transcription(kept, out_dir)
    if dates.undated or dates.bad_date:
        log.warning("%d pool items have no publication date and %d an unreadable one: not kept, "
                    "listed in %s", len(dates.undated), len(dates.bad_date), out_dir / "report.json")
    return BuildResult(kept, grouped, dates, report)


def export_for_transcription(items: Iterable[PoolItem], out_dir: str | Path) -> tuple[Path, Path]:
    """Module docstring, step 4: ``transcription.csv`` and ``transcription.jsonl``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [{"id": i.id, "audio": str(Path(i.audio).resolve()), "start": i.start,
             "end": "" if i.end is None else i.end, "draft_text": i.text,
             "language": i.language or detect_language(i.text), "published_at": i.published_at,
             "text": ""} for i in items]
    csv_path, jsonl_path = out_dir / "transcription.csv", out_dir / "transcription.jsonl"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=EXPORT_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    with jsonl_path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return csv_path, jsonl_path


def read_kept(path: str | Path) -> list[PoolItem]:
    """The ``kept.jsonl`` a build wrote."""
    names = {f.name for f in dataclasses.fields(PoolItem)}
    return [PoolItem(**{k: v for k, v in record.items() if k in names})
            for _, record in _read_jsonl(Path(path))]


def _transcript_rows(path: Path) -> list[dict]:
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    return [record for _, record in _read_jsonl(path)]


def import_transcripts(path: str | Path, out_dir: str | Path, dataset: str = "testset",
                       split: str = "test") -> dict:
    """Module docstring, step 5: transcripts (CSV or JSONL from the export, ``text`` filled in)
    -> a test shard set in ``out_dir``. Rows with an empty ``text`` are skipped and listed."""
    from funfactory.shards.keys import source_id
    from funfactory.shards.schema import new_meta
    from funfactory.shards.writer import ShardWriter

    path = Path(path)
    rows = _transcript_rows(path)
    lineage = {"pipeline": "testset-import", "version": __version__,
               "config_sha256": config_sha256({"transcripts": path.name, "dataset": dataset})}
    written, untranscribed = [], []
    with ShardWriter(out_dir, dataset, split) as writer:
        for number, row in enumerate(rows, 1):
            missing = [k for k in ("id", "audio", "text") if k not in row]
            if missing:
                raise FunfactoryError(f"{path} row {number} lacks {missing}: import the file "
                                      "that `funfactory testset export` wrote, with text filled in")
            transcript = (row.get("text") or "").strip()
            if not transcript:
                untranscribed.append(row["id"])
                continue
            start = float(row.get("start") or 0.0)
            end = float(row["end"]) if row.get("end") not in (None, "") else None
            audio = load_audio(row["audio"], start, end)
            uri = Path(row["audio"]).resolve().as_uri()
            language = row.get("language") or detect_language(transcript)
            meta = new_meta(key=_key(str(row["id"])), text=normalize_label(transcript, language),
                            raw_text=transcript, language=language,
                            duration=len(audio) / SAMPLE_RATE, task="test", source_id=source_id(uri),
                            uri=uri, offset=start, published_at=row.get("published_at") or None,
                            **lineage)
            writer.write(meta, audio)
            written.append(meta["key"])
    return {"transcripts": str(path), "written": len(written), "untranscribed": untranscribed,
            "shards": str(out_dir)}


def check_shards(train_shards, test_shards, out_dir: str | Path, config: TestsetConfig) -> dict:
    """Overlap between two shard sets (the test side indexed, training streamed); writes the
    leakage report into ``out_dir`` and returns its summary."""
    index = _leakage_index(config)
    test_keys = []
    for item in shard_items(test_shards, config.audio, config.workers):
        index.add(item)
        test_keys.append(item.key)
    grouped = group_by_test_item(index.scan(shard_items(train_shards, config.audio,
                                                        config.workers)))
    summary = {"test items": len(test_keys), "training items scanned": index.counts["training_items"],
               "text too short to judge": index.counts["text_too_short"]}
    jsonl, markdown = write_leakage_report(grouped, out_dir, summary)
    return {**summary, "leaking test items": len(grouped), "report": str(markdown),
            "leaking": sorted(grouped)}
