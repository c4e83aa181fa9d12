"""Real noise clips and a measured impulse response for augmentation (Fun-ASR sections 5.2, 5.6).

No MUSAN- or DEMAND-style corpus is packaged for offline use, so the default corpus draws real
recordings from Debian packages: ambient loops (`btanks-data`), stadium crowds (`etw-data`) and
traffic (`micropolis-data`, and the btanks train), plus babble made by mixing several TTS voices
speaking different sentences, and the street impulse response measured for `jconvolver`.
Everything is converted to 16 kHz mono. Each source file goes wholly to one split, train or test,
so test-time noise is never heard in training.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from funfactory.errors import MissingAssetError
from funfactory.synth.audio_files import write_audio
from funfactory.synth.tts import TARGET_SAMPLE_RATE, get_voice, resample_to_16k


@dataclass(frozen=True)
class NoiseSource:
    """Where a category of noise lives in a Debian package."""

    package: str
    category: str
    relative_paths: tuple[str, ...]


NOISE_SOURCES = (
    NoiseSource("btanks-data", "ambient", tuple(f"usr/share/games/btanks/data/sounds/ambient/{name}.ogg"
                                                 for name in ("city", "country", "forest", "swamp"))),
    NoiseSource("btanks-data", "traffic", ("usr/share/games/btanks/data/sounds/train.ogg",)),
    NoiseSource("etw-data", "crowd", tuple(f"usr/share/games/etw/crowd/crowd{index:02d}.wav"
                                            for index in range(1, 18)) + ("usr/share/games/etw/snd/crowd.wav",)),
    NoiseSource("micropolis-data", "traffic", ("usr/share/games/micropolis/res/sounds/heavytraffic.wav",)),
)
RIR_SOURCE = NoiseSource("jconvolver-config-files", "rir", tuple(
    f"usr/share/jconvolver/config-files/demo-reverbs/street2-{side}.wav" for side in ("L", "R")))
TEST_SHARE = 4  # one source file in four (at least one per category) is held out for test noise
BABBLE_VOICES = ("hibari-en", "piper-joe-en", "espeak-en", "espeak-cmn", "espeak-cmn-f")


def _package_listing(package: str) -> list[str] | None:
    try:
        listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    return listing.stdout.splitlines() if listing.returncode == 0 else None


def locate_sources(source: NoiseSource, search_dirs: list[Path] | None = None) -> list[Path]:
    """The files of `source`, from its Debian package or from `search_dirs` (matched by file name)."""
    if search_dirs:
        wanted = {Path(relative).name for relative in source.relative_paths}
        found = sorted({path for folder in search_dirs for path in Path(folder).rglob("*") if path.name in wanted})
        if found:
            return found
    files = [Path("/") / relative for relative in source.relative_paths]
    present = [path for path in files if path.is_file()]
    if not present:
        installed = _package_listing(source.package) is not None
        hint = (f"its files are missing: reinstall it with `apt-get install --reinstall {source.package}`"
                if installed else f"install it with `apt-get install {source.package}`")
        raise MissingAssetError(
            f"the {source.category} noise comes from the Debian package {source.package}, and {hint}; "
            f"or pass noise_dirs=[...] (`--noise-dir DIR`) pointing at a folder holding "
            f"{', '.join(sorted(Path(p).name for p in source.relative_paths)[:3])} ...")
    return present


def split_for(sources: list[str]) -> dict[str, str]:
    """Deterministic train/test split by source file: sorted by a hash, every TEST_SHARE-th to test."""
    ordered = sorted(sources, key=lambda name: hashlib.sha256(name.encode()).hexdigest())
    if len(ordered) < 2:
        return {name: "train" for name in ordered}
    test_count = max(1, len(ordered) // TEST_SHARE)
    return {name: ("test" if index < test_count else "train") for index, name in enumerate(ordered)}


def _load_16k(path: Path) -> np.ndarray:
    audio, sample_rate = sf.read(path, dtype="float32", always_2d=True)
    return resample_to_16k(audio.mean(axis=1), sample_rate)


def _record(noise_id: str, uri: str, package: str, original: str, category: str, duration: float,
            split: str) -> dict:
    return {"id": noise_id, "uri": uri, "source_package": package, "original_path": original,
            "category": category, "duration": round(duration, 4), "split": split}


def build_real_noise(out_dir: Path, search_dirs: list[Path] | None = None) -> list[dict]:
    """Convert the packaged noise clips to 16 kHz mono FLAC under out_dir/noise; reuse finished files."""
    noise_dir = out_dir / "noise"
    noise_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for category in sorted({source.category for source in NOISE_SOURCES}):
        members = [(source, path) for source in NOISE_SOURCES if source.category == category
                   for path in locate_sources(source, search_dirs)]
        splits = split_for([str(path) for _, path in members])
        for source, path in members:
            noise_id = f"{category}-{source.package.split('-')[0]}-{path.stem}"
            target = noise_dir / f"{noise_id}.flac"
            if not target.exists():
                write_audio(target, _load_16k(path), TARGET_SAMPLE_RATE)
            duration = sf.info(target).duration
            records.append(_record(noise_id, f"noise/{target.name}", source.package, str(path), category,
                                   duration, splits[str(path)]))
    return records


def make_babble(sentences: dict[str, list[str]], seed: int, seconds: float) -> np.ndarray:
    """Babble: several TTS voices speaking different sentences at once, each at its own loudness."""
    rng = np.random.default_rng(seed)
    length = int(seconds * TARGET_SAMPLE_RATE)
    mix = np.zeros(length, np.float32)
    for index, name in enumerate(BABBLE_VOICES):
        voice = get_voice(name)
        pool = sentences[voice.languages[0]]
        talker = np.zeros(0, np.float32)
        cursor = index
        while talker.size < length:
            sentence = pool[(seed * 7 + cursor * len(BABBLE_VOICES) + index) % len(pool)]
            speech = resample_to_16k(voice.synthesize(sentence, seed=seed + cursor), voice.sample_rate)
            pause = np.zeros(int(rng.uniform(0.05, 0.4) * TARGET_SAMPLE_RATE), np.float32)
            talker = np.concatenate([talker, speech, pause])
            cursor += 1
        offset = int(rng.integers(0, TARGET_SAMPLE_RATE))
        talker = np.roll(talker[:length], offset)
        rms = float(np.sqrt(np.mean(talker ** 2))) or 1.0
        mix += talker / rms * float(10 ** (rng.uniform(-4.0, 0.0) / 20))
    return (mix / max(float(np.abs(mix).max()), 1e-6) * 0.7).astype(np.float32)


def build_babble(out_dir: Path, sentences: dict[str, list[str]], clips: int, seconds: float) -> list[dict]:
    """`clips` babble clips under out_dir/noise, split between train and test like the real noise."""
    names = [f"babble-tts-{index:02d}" for index in range(clips)]
    splits = split_for(names)
    records = []
    for index, noise_id in enumerate(names):
        target = out_dir / "noise" / f"{noise_id}.flac"
        if not target.exists():
            write_audio(target, make_babble(sentences, seed=1000 + index, seconds=seconds), TARGET_SAMPLE_RATE)
        records.append(_record(noise_id, f"noise/{target.name}", "funfactory-tts",
                               f"tts:{'+'.join(BABBLE_VOICES)}#{index}", "babble",
                               sf.info(target).duration, splits[noise_id]))
    return records


def build_rir(out_dir: Path, search_dirs: list[Path] | None = None) -> list[dict]:
    """The measured street impulse response (48 kHz, two channels) as 16 kHz mono 24-bit FLACs.

    FLAC rather than float WAV: libsndfile stamps float WAVs with the write time (PEAK chunk), which
    would break byte-reproducibility. The response peaks near 0.27, well inside 24-bit range.
    """
    rir_dir = out_dir / "rir"
    rir_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for path in locate_sources(RIR_SOURCE, search_dirs):
        target = rir_dir / f"street-{path.stem.split('-')[-1]}.flac"
        if not target.exists():
            response, sample_rate = sf.read(path, dtype="float32", always_2d=True)
            temporary = target.with_name(f".{target.name}.tmp")
            sf.write(temporary, np.clip(resample_to_16k(response.mean(axis=1), sample_rate), -1.0, 1.0),
                     TARGET_SAMPLE_RATE, format="FLAC", subtype="PCM_24")
            temporary.replace(target)
        records.append({"id": target.stem, "uri": f"rir/{target.name}", "source_package": RIR_SOURCE.package,
                        "original_path": str(path), "kind": "measured street impulse response",
                        "duration": round(sf.info(target).duration, 4)})
    return records


def write_jsonl(path: Path, records: list[dict]) -> None:
    """One JSON object per line, written to a temp name and renamed."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text("".join(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
                                 for record in records), encoding="utf-8")
    temporary.replace(path)
