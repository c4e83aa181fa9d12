"""Noise collections for augmentation (Fun-ASR section 5.2: "real recorded noise"), split so that
test-time noise is never used in training.

A `NoiseClip` is one source file (or one generated babble clip), resampled to 16 kHz mono. The
split is made per collection and per source file: clips are ordered by a hash of their id and the
first `test_fraction` of them (at least one, where the collection has two or more) go to `test`.
The order depends only on the ids, so adding a file to a folder moves no other file across the
split.

Sources:
- `debian`: ambient loops (btanks-data), stadium crowds (etw-data), heavy traffic (micropolis-data);
- `corpus`: the embedded corpus's `noise/manifest.jsonl` (issue 2), which carries its own split;
- any user folder of audio files (`folder:/path/to/noise`);
- babble: several TTS voices speaking at once (`babble.py`), written to a folder and used as
  `folder:PATH=babble`; babble is speech, so it is never used for noise-only samples.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from funfactory.errors import FunfactoryError, MissingAssetError

SAMPLE_RATE = 16000
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3")

#: Debian noise packages (ASSETS.md): collection -> (package, glob patterns)
DEBIAN_COLLECTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ambient": ("btanks-data", ("/usr/share/games/btanks/data/sounds/ambient/*.ogg",)),
    "crowd": ("etw-data", ("/usr/share/games/etw/crowd/*.wav", "/usr/share/games/etw/snd/crowd.wav",
                           "/usr/share/games/etw/snd/fondo.wav")),
    "traffic": ("micropolis-data", ("/usr/share/games/micropolis/res/sounds/heavytraffic.wav",)),
}
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
            self._audio = load_audio_16k(self.path)
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


def clip_id(collection: str, path: str | Path) -> str:
    """'crowd-crowd07': collection and file stem, dot-free (it appears in sample JSON and keys)."""
    stem = "".join(c if c.isalnum() or c in "_-" else "_" for c in Path(path).stem)
    return f"{collection}-{stem}"


def _hash_order(clip: NoiseClip, salt: str) -> str:
    return hashlib.sha1(f"{salt}:{clip.id}".encode()).hexdigest()


def assign_splits(clips: list[NoiseClip], test_fraction: float, salt: str = "noise-split") -> None:
    """Per collection, put the first ceil(test_fraction * n) clips (by id hash) into `test`."""
    if not 0.0 <= test_fraction < 1.0:
        raise FunfactoryError(f"noise test_fraction {test_fraction} must be in [0, 1)")
    by_collection: dict[str, list[NoiseClip]] = {}
    for clip in clips:
        by_collection.setdefault(clip.collection, []).append(clip)
    for members in by_collection.values():
        ordered = sorted(members, key=lambda c: _hash_order(c, salt))
        n_test = math.ceil(test_fraction * len(ordered)) if len(ordered) > 1 else 0
        for i, clip in enumerate(ordered):
            clip.split = "test" if i < n_test else "train"


def debian_clips(collections: tuple[str, ...] = tuple(DEBIAN_COLLECTIONS)) -> list[NoiseClip]:
    clips = []
    for name in collections:
        if name not in DEBIAN_COLLECTIONS:
            raise FunfactoryError(f"unknown Debian noise collection {name!r}; "
                                  f"known: {sorted(DEBIAN_COLLECTIONS)}")
        package, patterns = DEBIAN_COLLECTIONS[name]
        paths = sorted({p for pattern in patterns for p in glob.glob(pattern)})
        if not paths:
            raise MissingAssetError(f"noise collection {name!r} needs the Debian package {package}: "
                                    f"apt-get install {package}")
        clips += [NoiseClip(clip_id(name, p), name, p) for p in paths]
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
    """Clips from a noise manifest (JSON lines with `path` and optional `id`, `collection`,
    `split`), as the embedded corpus writes it. Relative paths are relative to the manifest."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FunfactoryError(f"noise manifest {manifest} does not exist")
    clips = []
    for n, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            path = Path(row["path"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise FunfactoryError(f"noise manifest {manifest} line {n}: needs a JSON object with "
                                  f"'path' ({e})") from None
        path = path if path.is_absolute() else manifest.parent / path
        collection = str(row.get("collection") or row.get("kind") or "corpus")
        split = str(row.get("split", "train"))
        if split not in ("train", "test"):
            raise FunfactoryError(f"noise manifest {manifest} line {n}: split {split!r} is not "
                                  "train or test")
        cid = "".join(c if c.isalnum() or c in "_-" else "_" for c in str(row["id"])) \
            if row.get("id") else clip_id(collection, path)
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
    def from_sources(cls, sources: list[str], test_fraction: float = 0.2,
                     salt: str = "noise-split") -> NoiseCorpus:
        """`sources`: 'debian', 'debian:crowd', 'folder:/path[=name]', 'manifest:/path.jsonl'.
        Debian and folder clips are split here; manifest clips keep the split they carry."""
        to_split: list[NoiseClip] = []
        presplit: list[NoiseClip] = []
        for source in sources:
            kind, _, arg = source.partition(":")
            if kind == "debian":
                to_split += debian_clips(tuple(arg.split("+")) if arg else tuple(DEBIAN_COLLECTIONS))
            elif kind == "folder" and arg:
                path, _, name = arg.partition("=")
                to_split += folder_clips(path, name or None)
            elif kind == "manifest" and arg:
                presplit += manifest_clips(arg)
            else:
                raise FunfactoryError(f"noise source {source!r} is not one of 'debian', "
                                      "'debian:NAME[+NAME]', 'folder:PATH[=NAME]', 'manifest:PATH'")
        assign_splits(to_split, test_fraction, salt)
        return cls(to_split + presplit)

    def select(self, split: str, *, allow_speech_like: bool = True) -> list[NoiseClip]:
        chosen = [c for c in self.clips if c.split == split
                  and (allow_speech_like or not c.speech_like)]
        if not chosen:
            raise FunfactoryError(f"no {split} noise clips"
                                  f"{'' if allow_speech_like else ' that are not speech-like'}; "
                                  "add noise sources or lower noise.test_fraction")
        return chosen

    def manifest_rows(self) -> list[dict]:
        return [{"id": c.id, "collection": c.collection, "path": c.path, "split": c.split}
                for c in self.clips]
