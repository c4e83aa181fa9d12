"""Noise collections for augmentation (Fun-ASR section 5.2: "real recorded noise"), split so that
test-time noise is never used in training.

A `NoiseClip` is one source file, resampled to 16 kHz mono. The split is the project's one rule,
`funfactory.synth.noise.split_for`: per collection, source files ordered by a hash of their path,
one in four (at least one, where there are two or more) held out for test. The embedded corpus
(`synth/corpus.py`) splits the same Debian files with the same rule, so a clip is test noise in both or in
neither, and adding a file to a folder moves at most one other file across the split.

Sources:
- `debian`: ambient loops (btanks-data), stadium crowds (etw-data), traffic (micropolis-data and
  the btanks train), as listed in `funfactory.synth.noise.NOISE_SOURCES`;
- `manifest:PATH`: a noise manifest such as the embedded corpus's `noise/manifest.jsonl`, which
  carries its own split;
- `folder:PATH[=NAME]`: any user folder of audio files;
- babble (`babble.py`) written to a folder and used as `folder:PATH=babble`, or the corpus's
  babble category; babble is speech, so it is never used for noise-only samples.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from funfactory.cache import cache_root
from funfactory.errors import FunfactoryError

SAMPLE_RATE = 16000
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3")

SPEECH_LIKE = frozenset({"babble"})


@dataclass
class NoiseClip:
    """One noise source file at 16 kHz mono; `audio` is loaded on first use."""

    id: str
    collection: str
    path: str
    split: str = "train"
    _audio: np.ndarray | None = field(default=None, repr=False)

    @property
    def audio(self) -> np.ndarray:
        if self._audio is None:
            self._audio = cached_audio_16k(self.path)
        return self._audio

    @property
    def speech_like(self) -> bool:
        return self.collection in SPEECH_LIKE


def load_audio_16k(path: str | Path) -> np.ndarray:
    """Any soundfile-readable file -> float32 mono at 16 kHz, DC removed."""
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise FunfactoryError(f"noise file {path} is not readable audio: {e}") from None
    mono = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE)
    mono = np.ascontiguousarray(mono - mono.mean(), dtype=np.float32)
    if mono.size < SAMPLE_RATE // 10 or not np.any(mono):
        raise FunfactoryError(f"noise file {path} is shorter than 0.1 s or silent; remove it")
    return mono


def cached_audio_16k(path: str | Path) -> np.ndarray:
    """:func:`load_audio_16k` decoded once per machine: the result is kept as ``.npy`` in
    ``{cache}/noise-16k`` (named by the file's absolute path, size and modification time, so an
    edited file is decoded again) and memory-mapped, read-only, by every later job and worker.
    Decoding and resampling the Debian noise took longer than augmenting a hundred clips."""
    source = Path(path).absolute()
    try:
        status = source.stat()
    except OSError as e:
        raise FunfactoryError(f"noise file {path} is not readable audio: {e}") from None
    name = hashlib.sha256(f"{source}|{status.st_size}|{status.st_mtime_ns}".encode()).hexdigest()
    cached = cache_root() / "noise-16k" / f"{name[:32]}.npy"
    if cached.is_file():
        try:
            return np.load(cached, mmap_mode="r")
        except (ValueError, OSError):
            pass  # a damaged cache file: decode again and replace it
    audio = load_audio_16k(source)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f".{cached.stem}.{os.getpid()}.{threading.get_ident()}.npy")
    np.save(partial, audio)
    partial.replace(cached)
    return audio


def clip_id(collection: str, path: str | Path) -> str:
    """'crowd-crowd07': collection and file stem, dot-free (it appears in sample JSON)."""
    stem = "".join(c if c.isalnum() or c in "_-" else "_" for c in Path(path).stem)
    return f"{collection}-{stem}" if stem else collection


def assign_splits(clips: list[NoiseClip]) -> None:
    """Per collection, hold out test files by `synth.noise.split_for` (by source path)."""
    from funfactory.synth.noise import split_for

    by_collection: dict[str, list[NoiseClip]] = {}
    for clip in clips:
        by_collection.setdefault(clip.collection, []).append(clip)
    for members in by_collection.values():
        splits = split_for([c.path for c in members])
        for clip in members:
            clip.split = splits[clip.path]


def debian_clips(collections: tuple[str, ...] | None = None) -> list[NoiseClip]:
    """The Debian noise files (`synth.noise.NOISE_SOURCES`), split as the embedded corpus splits
    them; `collections` picks categories (ambient, crowd, traffic)."""
    from funfactory.synth.noise import NOISE_SOURCES, locate_sources

    known = sorted({source.category for source in NOISE_SOURCES})
    for name in collections or ():
        if name not in known:
            raise FunfactoryError(f"unknown Debian noise collection {name!r}; known: {known}")
    clips = []
    for source in NOISE_SOURCES:
        if collections and source.category not in collections:
            continue
        for path in locate_sources(source):
            cid = f"{source.category}-{source.package.split('-')[0]}-{path.stem}"
            clips.append(NoiseClip(clip_id(cid, ""), source.category, str(path)))
    assign_splits(clips)
    return clips


def folder_clips(folder: str | Path, collection: str | None = None) -> list[NoiseClip]:
    """Every audio file under `folder` (recursively) as one clip of `collection` (default: the
    folder's name)."""
    root = Path(folder)
    if not root.is_dir():
        raise FunfactoryError(f"noise folder {folder} does not exist")
    name = collection or root.name
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not paths:
        raise FunfactoryError(f"noise folder {folder} holds no audio ({', '.join(AUDIO_SUFFIXES)})")
    return [NoiseClip(clip_id(name, p.relative_to(root).with_suffix("")), name, str(p))
            for p in paths]


def manifest_clips(manifest: str | Path) -> list[NoiseClip]:
    """Clips from a noise manifest: JSON lines with `path` (or `uri`), optional `id`,
    `collection` (or `category`) and `split`, as the embedded corpus writes it. A relative path is
    looked up beside the manifest, then in the folder above it (the corpus root)."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FunfactoryError(f"noise manifest {manifest} does not exist")
    clips = []
    for n, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            path = Path(row.get("path") or row["uri"])
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise FunfactoryError(f"noise manifest {manifest} line {n}: needs a JSON object with "
                                  f"'path' or 'uri' ({e})") from None
        if not path.is_absolute():
            beside, above = manifest.parent / path, manifest.parent.parent / path
            path = beside if beside.exists() or not above.exists() else above
        collection = str(row.get("collection") or row.get("category") or "corpus")
        split = str(row.get("split", "train"))
        if split not in ("train", "test"):
            raise FunfactoryError(f"noise manifest {manifest} line {n}: split {split!r} is not "
                                  "train or test")
        cid = clip_id(str(row["id"]), "") if row.get("id") else clip_id(collection, path)
        clips.append(NoiseClip(cid, collection, str(path), split))
    return clips


class NoiseCorpus:
    """A set of noise clips with their split; `select(split)` gives the clips for one use."""

    def __init__(self, clips: list[NoiseClip]):
        ids = [c.id for c in clips]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise FunfactoryError(f"noise clip ids {duplicates} appear twice; give the folders "
                                  "different collection names")
        self.clips = sorted(clips, key=lambda c: c.id)

    @classmethod
    def from_sources(cls, sources: list[str]) -> NoiseCorpus:
        """`sources`: 'debian', 'debian:crowd+ambient', 'folder:/path[=name]',
        'manifest:/path.jsonl'. Debian and folder clips are split here; manifest clips keep the
        split they carry."""
        to_split: list[NoiseClip] = []
        presplit: list[NoiseClip] = []
        for source in sources:
            kind, _, arg = source.partition(":")
            if kind == "debian":
                presplit += debian_clips(tuple(arg.split("+")) if arg else None)
            elif kind == "folder" and arg:
                path, _, name = arg.partition("=")
                to_split += folder_clips(path, name or None)
            elif kind == "manifest" and arg:
                presplit += manifest_clips(arg)
            else:
                raise FunfactoryError(f"noise source {source!r} is not one of 'debian', "
                                      "'debian:NAME[+NAME]', 'folder:PATH[=NAME]', 'manifest:PATH'")
        assign_splits(to_split)
        return cls(to_split + presplit)

    def select(self, split: str, *, allow_speech_like: bool = True) -> list[NoiseClip]:
        chosen = [c for c in self.clips if c.split == split
                  and (allow_speech_like or not c.speech_like)]
        if not chosen:
            raise FunfactoryError(f"no {split} noise clips"
                                  f"{'' if allow_speech_like else ' that are not speech-like'}; "
                                  "add noise sources")
        return chosen

    def manifest_rows(self) -> list[dict]:
        return [{"id": c.id, "collection": c.collection, "path": c.path, "split": c.split}
                for c in self.clips]
