"""Ingest (Fun-ASR report section 3.1, first step): audio sources -> 16 kHz mono windows.

Sources come from

- a folder: every entry with an audio extension (wav, flac, mp3, ogg, opus), recursively (see
  :func:`list_folder` for links, directories and special files named like audio);
- a JSONL list: one object per line with ``uri`` (or ``path``; ``file://`` or a path relative to
  the list), optional ``id``, ``language`` (hint), ``published_at``, ``text`` (reference) and
  ``utterances`` (``[{start, end, text}]``, as the embedded corpus' ``manifest.jsonl`` writes);
- a lhotse manifest (``RecordingSet`` or ``CutSet``, jsonl or jsonl.gz): one source per recording
  or per cut (its offset and duration; supervision text as reference);
- a Kaldi data directory, a NeMo manifest or a Fun-ASR JSONL: one source per utterance
  (:mod:`funfactory.pipelines.label.manifests`).

:func:`stream_audio` decodes a source with soundfile window by window, mixes channels down to
mono and resamples with a streaming ``soxr`` resampler, so an hours-long file is never whole in
memory. It raises :class:`IngestError` with a rejects reason: ``missing_file``, ``empty_file``
(zero bytes), ``not_audio`` (no audio container signature), ``corrupt_file`` (an audio signature
libsndfile cannot open), ``no_audio`` (zero frames), ``decode_error`` (failed mid-stream, or a WAV
whose data chunk is cut short: what was decoded before is kept), ``unsupported_uri``, and the
listing's refusals ``external_link``, ``broken_link``, ``duplicate_link``, ``not_a_file``.

Every source is named by the path the user gave (made absolute, links not resolved), so a link
is reported under its own name, never its target's.

Inputs may also live on an object store or any fsspec URL (``s3://bucket/in``: a folder or a
JSONL list there, or JSONL rows whose ``uri`` is such a URL); those files are read through
fsspec with the store's standard credentials (``AWS_ENDPOINT_URL``, ...).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlparse

import numpy as np

from funfactory.errors import FunfactoryError
from funfactory.pipelines.label.config import IngestConfig
from funfactory.shards import storage
from funfactory.shards.keys import source_id

SAMPLE_RATE = 16000
_SIGNATURES = (b"RIFF", b"RF64", b"fLaC", b"OggS", b"ID3", b"FORM", b"caff", b"wvpk")


class IngestError(FunfactoryError):
    def __init__(self, reason: str, detail: str, at_seconds: float | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.at_seconds = reason, detail, at_seconds


@dataclass(frozen=True)
class Source:
    id: str
    uri: str
    path: str
    language: str = ""
    published_at: str | None = None
    offset: float = 0.0
    duration: float | None = None
    reference: str | None = None
    utterances: tuple = field(default_factory=tuple)  # ((start, end, text), ...) in source time
    refused: tuple = ()  # (reason, detail) when the listing refuses the entry without opening it

    def as_dict(self) -> dict:
        return {"id": self.id, "uri": self.uri, "path": self.path, "language": self.language,
                "published_at": self.published_at, "offset": self.offset,
                "duration": self.duration, "reference": self.reference,
                "utterances": [list(u) for u in self.utterances], "refused": list(self.refused)}

    @classmethod
    def from_dict(cls, d: dict) -> Source:
        return cls(**{**d, "utterances": tuple(tuple(u) for u in d.get("utterances") or ()),
                      "refused": tuple(d.get("refused") or ())})


def _file_source(path: Path, cfg: IngestConfig, **kw) -> Source:
    path = Path(os.path.abspath(path))  # the name the user gave: links stay unresolved
    uri = path.as_uri()
    unit = kw.pop("unit_suffix", "")
    return Source(id=source_id(uri + unit), uri=uri, path=str(path),
                  language=kw.pop("language", "") or cfg.language,
                  published_at=kw.pop("published_at", None) or cfg.published_at or None, **kw)


def _resolve(uri: str, base: Path) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme in ("", None) or (len(parsed.scheme) == 1 and uri[1:3] == ":\\"):
        path = Path(uri)
        return path if path.is_absolute() else base / path
    return None


def _from_jsonl(path: Path, cfg: IngestConfig) -> list[Source]:
    sources = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            uri = row.get("uri") or row.get("path")
            if not isinstance(uri, str):
                raise KeyError("uri")
        except (json.JSONDecodeError, KeyError, AttributeError):
            raise FunfactoryError(f"{path}:{n}: each line must be a JSON object with 'uri' or "
                                  "'path'") from None
        utterances = tuple((float(u["start"]), float(u["end"]), str(u.get("text", "")))
                           for u in row.get("utterances") or ())
        local = _resolve(uri, path.parent)
        published = row.get("published_at") or cfg.published_at or None
        if local is None:
            sources.append(Source(id=source_id(uri), uri=uri, path="", language=row.get(
                "language") or cfg.language, published_at=published))
            continue
        sources.append(_file_source(local, cfg, language=row.get("language") or "",
                                    published_at=published, reference=row.get("text"),
                                    utterances=utterances))
    return sources


def _from_lhotse(path: Path, cfg: IngestConfig) -> list[Source]:
    from lhotse import load_manifest_lazy
    sources = []
    for item in load_manifest_lazy(path):
        recording = getattr(item, "recording", None) or item
        files = [s for s in recording.sources if s.type == "file"]
        if not files:
            raise FunfactoryError(f"{path}: recording {recording.id} has no 'file' source; only "
                                  "local files are ingested")
        local = _resolve(files[0].source, path.parent)
        supervisions = getattr(item, "supervisions", None) or []
        texts = [s.text for s in supervisions if s.text]
        language = next((s.language for s in supervisions if s.language), "") or ""
        is_cut = item is not recording
        offset = float(item.start) if is_cut else 0.0
        utterances = tuple((offset + float(s.start), offset + float(s.start + s.duration),
                            s.text or "") for s in supervisions)
        sources.append(_file_source(
            local, cfg, unit_suffix=f"#{item.id}" if is_cut else "",
            language=_lhotse_language(language), offset=offset,
            duration=float(item.duration) if is_cut else None,
            reference=" ".join(texts) or None, utterances=utterances))
    return sources


def _lhotse_language(language: str) -> str:
    names = {"english": "en", "chinese": "zh", "mandarin": "zh"}
    return names.get(language.lower(), language.lower()[:5])


def list_sources(location: str | Path, cfg: IngestConfig) -> list[Source]:
    """Every source of ``location`` (module docstring), sorted by id, ids unique."""
    if not storage.is_local(location):
        return _unique(_remote_sources(str(location), cfg))
    from funfactory.pipelines.label import manifests

    location = Path(location)
    fmt = cfg.format
    if fmt == "auto":
        fmt = manifests.detect_format(location) or fmt
    if fmt == "auto":
        if location.is_dir():
            fmt = "folder"
        elif location.name.endswith((".jsonl", ".json")) and not _looks_lhotse(location):
            fmt = "jsonl"
        elif location.name.endswith((".jsonl", ".jsonl.gz", ".json")):
            fmt = "lhotse"
        else:
            raise FunfactoryError(f"input {location}: not a folder, .jsonl list or lhotse "
                                  "manifest; set ingest.format")
    if fmt in manifests.FORMATS:
        sources = manifests.manifest_sources(location, fmt, cfg)
    elif fmt == "folder":
        if not location.is_dir():
            raise FunfactoryError(f"input folder {location} does not exist")
        sources = list_folder(location, cfg)
    elif fmt == "jsonl":
        sources = _from_jsonl(location, cfg)
    elif fmt == "lhotse":
        sources = _from_lhotse(location, cfg)
    else:
        raise FunfactoryError(f"ingest.format {fmt!r}: use auto, folder, jsonl, lhotse, kaldi, "
                              "nemo or funasr")
    return _unique(sources)


def _unique(sources: list[Source]) -> list[Source]:
    by_id: dict[str, Source] = {}
    for s in sources:
        by_id.setdefault(s.id, s)
    return [by_id[k] for k in sorted(by_id)]


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def list_folder(root: Path, cfg: IngestConfig) -> list[Source]:
    """One source per entry of ``root`` (recursively) whose name has an audio extension, named by
    its own path. Entries that cannot be read as audio files are sources with ``refused`` set, so
    they reach the rejects table under that name instead of vanishing:

    - ``external_link``: a link whose target lies outside ``root`` (a link into another tree
      can leak data the job was not given), also a link to an outside folder whatever its name;
      ``ingest.follow_external_links`` follows them;
    - ``broken_link``: a link to nothing, or a link loop;
    - ``duplicate_link``: a link to a file the listing already holds (it would be labelled twice);
    - ``not_a_file``: a directory, FIFO, socket or device named like audio (a directory is still
      searched).

    A link to a directory inside ``root`` is not searched (its files are listed under their own
    names); one leading outside is searched when the flag is set; each real directory is searched
    once (no loops)."""
    extensions = {"." + e.lower().lstrip(".") for e in cfg.extensions}
    real_root = os.path.realpath(root)
    entries: list[tuple[Path, str]] = []  # (path as found, its real path)
    seen_dirs = {real_root}
    refused: list[Source] = []

    def refuse(path: Path, reason: str, detail: str, any_name: bool = False):
        if any_name or path.suffix.lower() in extensions:
            refused.append(_file_source(path, cfg, refused=(reason, detail)))

    def walk(folder: Path):
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            path = Path(entry.path)
            real = os.path.realpath(path)
            target = f"a link to {os.readlink(path)}" if entry.is_symlink() else ""
            if target and not os.path.exists(path):
                refuse(path, "broken_link", f"{path} is {target}, which does not exist or loops")
                continue
            if target and not _inside(real, real_root) and not cfg.follow_external_links:
                refuse(path, "external_link",
                       f"{path} is {target}, outside the input folder {root}; copy it in or "
                       "set ingest.follow_external_links=true", any_name=os.path.isdir(path))
                continue
            mode = os.stat(path).st_mode
            if stat.S_ISDIR(mode):
                refuse(path, "not_a_file", f"{path} is a directory named like an audio file "
                                           "(its contents are listed)")
                if (not target or not _inside(real, real_root)) and real not in seen_dirs:
                    seen_dirs.add(real)
                    walk(path)
            elif not stat.S_ISREG(mode):
                refuse(path, "not_a_file", f"{path} is not a regular file (a FIFO, socket or "
                                           "device)")
            elif path.suffix.lower() in extensions:
                entries.append((path, real))

    walk(root)
    plain = {real for path, real in entries if not path.is_symlink()}
    sources = []
    for path, real in entries:
        if path.is_symlink() and real in plain:
            sources.append(_file_source(path, cfg, refused=(
                "duplicate_link", f"{path} is a link to {real}, which is labelled under its own "
                                  "name")))
        else:
            sources.append(_file_source(path, cfg))
    return sources + refused


def _remote_source(uri: str, cfg: IngestConfig, row: dict | None = None) -> Source:
    row = row or {}
    utterances = tuple((float(u["start"]), float(u["end"]), str(u.get("text", "")))
                       for u in row.get("utterances") or ())
    return Source(id=source_id(uri), uri=uri, path="",
                  language=row.get("language") or cfg.language,
                  published_at=row.get("published_at") or cfg.published_at or None,
                  reference=row.get("text"), utterances=utterances)


def _remote_sources(location: str, cfg: IngestConfig) -> list[Source]:
    """Sources of a folder or JSONL list on an object store (any fsspec URL): audio files by
    extension under the folder, or the list's rows with URLs (relative ones resolved against the
    list's folder)."""
    location = storage.url_of(location)
    if location.endswith((".jsonl", ".json")) and cfg.format in ("auto", "jsonl"):
        sources = []
        base = location.rsplit("/", 1)[0]
        for n, line in enumerate(storage.read_bytes(location).decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            uri = row.get("uri") or row.get("path") if isinstance(row, dict) else None
            if not isinstance(uri, str):
                raise FunfactoryError(f"{location}:{n}: each line must be a JSON object with "
                                      "'uri' or 'path'")
            sources.append(_remote_source(uri if "://" in uri else storage.join(base, uri), cfg,
                                          row))
        return sources
    if cfg.format not in ("auto", "folder") or not storage.is_dir(location):
        raise FunfactoryError(f"input {location}: not a folder or .jsonl list on that store (a "
                              "lhotse manifest must be local); check the URL and the store's "
                              "credentials (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...)")
    extensions = {"." + e.lower().lstrip(".") for e in cfg.extensions}
    return [_remote_source(url, cfg) for url in storage.glob(storage.join(location, "**"))
            if "." + url.rsplit(".", 1)[-1].lower() in extensions]


def _looks_lhotse(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            first = json.loads(f.readline() or "{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(first, dict) and ("sources" in first or "recording" in first
                                        or first.get("type") == "MonoCut")


def sniff(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(12)


def _has_signature(head: bytes) -> bool:
    return head.startswith(_SIGNATURES) or (len(head) > 1 and head[0] == 0xFF
                                            and head[1] & 0xE0 == 0xE0)


def wav_shortfall(path: str) -> tuple[int, int] | None:
    """``(declared, present)`` bytes of a RIFF WAV's data chunk when the file ends before the
    chunk does (a copy or download cut short); None otherwise. libsndfile quietly reads such a
    file as shorter, so without this check a cut recording looks like a complete one."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        position = 12
        while position + 8 <= size:
            f.seek(position)
            chunk, length = struct.unpack("<4sI", f.read(8))
            if chunk == b"data":
                present = size - position - 8
                # 0xFFFFFFFF: a streaming writer that never learnt the length
                return (length, present) if present < length < 0xFFFFFFFF else None
            position += 8 + length + (length & 1)
    return None


@dataclass
class Window:
    offset: float  # seconds in the source (16 kHz timeline, source offset included)
    audio: np.ndarray  # float32 mono 16 kHz
    decode_seconds: float
    resample_seconds: float


def open_info(source: Source):
    """Check a source can be decoded; returns ``(samplerate, channels, frames)`` or raises
    IngestError with the rejects reason."""
    import soundfile as sf
    if source.refused:
        raise IngestError(*source.refused)
    if not source.path:
        return _open_remote_info(source)
    path = Path(source.path)
    if not path.is_file():
        raise IngestError("missing_file", f"{path} does not exist")
    if path.stat().st_size == 0:
        raise IngestError("empty_file", f"{path} has zero bytes")
    head = sniff(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        if _has_signature(head):
            raise IngestError("corrupt_file", f"{path}: libsndfile cannot open it ({e})") from None
        raise IngestError("not_audio",
                          f"{path}: no audio signature (starts {head[:8]!r})") from None
    if info.frames == 0 and not wav_shortfall(str(path)):
        raise IngestError("no_audio", f"{path}: the file holds zero audio frames")
    return info.samplerate, info.channels, info.frames


def _open_remote_info(source: Source):
    import soundfile as sf
    try:
        if not storage.exists(source.uri):
            raise IngestError("missing_file", f"{source.uri} does not exist")
        if storage.size(source.uri) == 0:
            raise IngestError("empty_file", f"{source.uri} has zero bytes")
        with storage.open_read(source.uri) as f:
            head = f.read(12)
            f.seek(0)
            try:
                info = sf.info(f)
            except (sf.LibsndfileError, RuntimeError, TypeError) as e:
                if _has_signature(head):
                    raise IngestError("corrupt_file", f"{source.uri}: libsndfile cannot open it "
                                                      f"({e})") from None
                raise IngestError("not_audio", f"{source.uri}: no audio signature (starts "
                                               f"{head[:8]!r})") from None
    except IngestError:
        raise
    except Exception as e:  # noqa: BLE001 - any store's client error becomes a rejects row
        raise IngestError("unsupported_uri", f"{source.uri}: cannot read it through fsspec "
                                             f"({type(e).__name__}: {e})") from None
    if info.frames == 0:
        raise IngestError("no_audio", f"{source.uri}: the file holds zero audio frames")
    return info.samplerate, info.channels, info.frames


def _open_audio(source: Source):
    """A soundfile reader on the source: a local path, or a seekable fsspec file."""
    import soundfile as sf
    if source.path:
        return contextlib.nullcontext(), sf.SoundFile(source.path)
    handle = storage.open_read(source.uri)
    return handle, sf.SoundFile(handle)


def stream_audio(source: Source, window_seconds: float = 30.0) -> Iterator[Window]:
    """16 kHz mono windows of ``source`` in order (module docstring)."""
    import soundfile as sf
    import soxr

    rate, channels, frames = open_info(source)
    start = int(round(source.offset * rate))
    stop = frames if source.duration is None else min(frames, start + int(round(
        source.duration * rate)))
    block = max(1, int(window_seconds * rate))
    resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32") \
        if rate != SAMPLE_RATE else None
    shortfall = wav_shortfall(source.path) if source.path else None
    emitted = 0
    position = start
    handle, reader = _open_audio(source)
    with handle, reader as f:
        if start:
            f.seek(start)
        while position < stop:
            t0 = time.perf_counter()
            try:
                data = f.read(min(block, stop - position), dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as e:
                raise IngestError("decode_error", f"{source.path}: {e}",
                                  at_seconds=position / rate) from None
            if len(data) == 0:
                break
            position += len(data)
            mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
            t1 = time.perf_counter()
            last = position >= stop
            out = resampler.resample_chunk(np.ascontiguousarray(mono), last=last) \
                if resampler else np.ascontiguousarray(mono, dtype=np.float32)
            t2 = time.perf_counter()
            if len(out):
                yield Window(source.offset + emitted / SAMPLE_RATE, out.astype(np.float32),
                             t1 - t0, t2 - t1)
                emitted += len(out)
            if last:
                break
        if resampler is not None and position < stop:
            tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(tail):
                yield Window(source.offset + emitted / SAMPLE_RATE, tail.astype(np.float32),
                             0.0, 0.0)
    wanted = None if source.duration is None else start + int(round(source.duration * rate))
    if shortfall and (wanted is None or wanted > frames):
        raise IngestError("decode_error", f"{source.path}: truncated WAV: its data chunk "
                                          f"declares {shortfall[0]} bytes, the file holds "
                                          f"{shortfall[1]}", at_seconds=frames / rate)
