"""The embedded default corpus: raw long-form speech made offline by real TTS engines.

Fun-ASR's data pipeline (section 3.1) starts from long raw recordings with publication dates
(section 6.1 builds test sets from media after a cutoff date) and augments with real noise
(sections 5.2, 5.6) and code-switched speech (section 5.4). This module makes a small corpus of that
shape so the demo and every test run on real audio:

- long multi-utterance recordings in English, Mandarin and zh-en code-switched speech, at the
  engines' native rates (22.05 / 24 kHz) and in wav, flac and ogg, with seeded silences between
  utterances, listed in `manifest.jsonl` with exact utterance spans;
- real noise clips from Debian packages plus TTS babble, 16 kHz mono FLAC, split train/test by
  source file (`noise/manifest.jsonl`), and a measured street impulse response (`rir/`);
- `corpus.json`, a summary.

The same seed and scale give byte-identical files; a rerun reuses finished recordings (each is
written to a temporary name and renamed; `.done/ID.json` records the plan it was made from).
`default_corpus(scale)` builds once into the cache and is safe to call from concurrent processes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from funfactory.errors import FunfactoryError
from funfactory.synth.audio_files import write_audio
from funfactory.synth.noise import build_babble, build_real_noise, build_rir, write_jsonl
from funfactory.synth.tts import get_voice, resample
from funfactory.cache import cache_root, file_lock

GENERATOR_VERSION = "1.0.0"
LANGUAGES = ("en", "zh", "zh-en")
TEXTS_DIR = Path(__file__).with_name("texts")
STATE_DIR = ".done"  # per-recording completion records: the plan hash and the manifest row
GAP_SECONDS = (0.4, 2.5)
EDGE_SECONDS = (0.3, 1.0)
SPEECH_RMS_DBFS = (-26.0, -18.0)
NOISE_FLOOR_DBFS = -72.0
PEAK_LIMIT = 0.95
FIRST_DATE = dt.date(2024, 1, 1)
LAST_DATE = dt.date(2026, 12, 31)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordingSpec:
    """One recording to make: its language, the voices taking turns, length and file format."""

    language: str
    voices: tuple[str, ...]
    utterances: int
    audio_format: str
    channels: int = 1


@dataclass(frozen=True)
class ScaleSpec:
    recordings: tuple[RecordingSpec, ...]
    babble_clips: int
    babble_seconds: float


SCALES = {
    # About 70 s of speech; Kokoro only for two short recordings, so it builds in well under a minute.
    "tiny": ScaleSpec(recordings=(
        RecordingSpec("en", ("hibari-en",), 4, "flac"),
        RecordingSpec("en", ("piper-joe-en",), 4, "wav"),
        RecordingSpec("en", ("hibari-en",), 3, "ogg"),
        RecordingSpec("zh", ("kokoro-alpha",), 2, "flac"),
        RecordingSpec("zh", ("espeak-cmn", "espeak-cmn-f"), 3, "ogg"),
        RecordingSpec("zh-en", ("kokoro-kumo",), 2, "wav"),
        RecordingSpec("zh-en", ("espeak-cmn",), 2, "flac"),
    ), babble_clips=2, babble_seconds=8.0),
    # About 7 minutes of speech: half English, a quarter Mandarin, a quarter zh-en.
    "default": ScaleSpec(recordings=(
        RecordingSpec("en", ("hibari-en",), 16, "flac"),
        RecordingSpec("en", ("piper-joe-en",), 10, "wav"),
        RecordingSpec("en", ("hibari-en",), 8, "ogg"),
        RecordingSpec("en", ("piper-joe-en",), 8, "flac", channels=2),
        RecordingSpec("en", ("hibari-en",), 8, "wav"),
        RecordingSpec("en", ("piper-joe-en",), 8, "ogg"),
        RecordingSpec("zh", ("kokoro-alpha", "kokoro-kumo"), 8, "flac"),
        RecordingSpec("zh", ("kokoro-nezumi",), 6, "ogg"),
        RecordingSpec("zh", ("espeak-cmn", "espeak-cmn-f"), 10, "wav"),
        RecordingSpec("zh-en", ("kokoro-gongitsune", "kokoro-tebukuro"), 10, "wav"),
        RecordingSpec("zh-en", ("kokoro-alpha",), 5, "flac"),
        RecordingSpec("zh-en", ("espeak-cmn", "espeak-cmn-f"), 10, "ogg"),
    ), babble_clips=3, babble_seconds=20.0),
}


@dataclass(frozen=True)
class UtterancePlan:
    text: str
    voice: str
    tts_seed: int
    rms_dbfs: float
    gap_after: float


@dataclass(frozen=True)
class RecordingPlan:
    """Everything that decides a recording's bytes, fixed by the corpus seed before any synthesis."""

    id: str
    language: str
    audio_format: str
    channels: int
    published_at: str | None
    lead_in: float
    utterances: tuple[UtterancePlan, ...]
    floor_seed: int

    @property
    def uri(self) -> str:
        return f"audio/{self.id}.{self.audio_format}"

    def sha256(self) -> str:
        blob = json.dumps({"generator": GENERATOR_VERSION, **asdict(self)}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class CorpusInfo:
    """A built corpus folder and its summary (what `corpus.json` holds)."""

    root: Path
    seed: int
    scale: str
    generator_version: str
    counts: dict = field(default_factory=dict)
    hours: dict = field(default_factory=dict)

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.jsonl"

    @property
    def noise_manifest_path(self) -> Path:
        return self.root / "noise" / "manifest.jsonl"

    @property
    def rir_manifest_path(self) -> Path:
        return self.root / "rir" / "manifest.jsonl"

    def recordings(self) -> list[dict]:
        """The manifest: one dict per recording (uri relative to `root`)."""
        return _read_jsonl(self.manifest_path)

    def noise(self, split: str | None = None) -> list[dict]:
        """Noise clips, optionally only the "train" or "test" split."""
        return [row for row in _read_jsonl(self.noise_manifest_path) if split is None or row["split"] == split]

    def rirs(self) -> list[dict]:
        return _read_jsonl(self.rir_manifest_path)

    def path(self, uri: str) -> Path:
        """Absolute path of a manifest uri."""
        return self.root / uri

    @classmethod
    def load(cls, root: Path) -> "CorpusInfo":
        summary_path = Path(root) / "corpus.json"
        if not summary_path.is_file():
            raise FunfactoryError(f"{root} is not a built corpus (no corpus.json); "
                                  "build it with `funfactory synth corpus --out DIR`")
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        return cls(root=Path(root), seed=summary["seed"], scale=summary["scale"],
                   generator_version=summary["generator_version"], counts=summary["counts"],
                   hours=summary["hours"])


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_sentences(language: str) -> list[str]:
    """The sentence pool of `language` ("en", "zh", "zh-en") shipped in synth/texts."""
    lines = (TEXTS_DIR / f"{language}.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _spread_dates(rng: np.random.Generator, count: int) -> list[str]:
    """`count` dates spread evenly over FIRST_DATE..LAST_DATE (one per stratum), in seeded order."""
    span = (LAST_DATE - FIRST_DATE).days
    strata = rng.permutation(count)
    return [(FIRST_DATE + dt.timedelta(days=int((stratum + rng.uniform()) * span / count))).isoformat()
            for stratum in strata]


def plan_corpus(seed: int, scale: str) -> list[RecordingPlan]:
    """Decide every recording's sentences, voices, levels, silences and date from the seed."""
    if scale not in SCALES:
        raise FunfactoryError(f"unknown corpus scale {scale!r}; choose one of {', '.join(SCALES)}")
    rng = np.random.default_rng([seed, 20250])
    pools = {language: list(rng.permutation(load_sentences(language))) for language in LANGUAGES}
    specs = SCALES[scale].recordings
    dates: list[str | None] = list(_spread_dates(rng, len(specs)))
    dates[int(rng.integers(len(specs)))] = None
    per_language: dict[str, int] = {}
    plans = []
    for spec, published_at in zip(specs, dates):
        index = per_language[spec.language] = per_language.get(spec.language, -1) + 1
        pool = pools[spec.language]
        voice = spec.voices[int(rng.integers(len(spec.voices)))]
        utterances = []
        for _ in range(spec.utterances):
            if not pool:
                pool.extend(rng.permutation(load_sentences(spec.language)))
            utterances.append(UtterancePlan(
                text=str(pool.pop()), voice=voice, tts_seed=int(rng.integers(2 ** 31)),
                rms_dbfs=round(float(rng.uniform(*SPEECH_RMS_DBFS)), 3),
                gap_after=round(float(rng.uniform(*GAP_SECONDS)), 3)))
            if len(spec.voices) > 1 and rng.uniform() < 0.6:
                voice = spec.voices[(spec.voices.index(voice) + 1) % len(spec.voices)]
        last = utterances[-1]
        utterances[-1] = UtterancePlan(last.text, last.voice, last.tts_seed, last.rms_dbfs,
                                       round(float(rng.uniform(*EDGE_SECONDS)), 3))
        plans.append(RecordingPlan(
            id=f"ff{seed}-{spec.language.replace('-', '')}-{index:02d}", language=spec.language,
            audio_format=spec.audio_format, channels=spec.channels, published_at=published_at,
            lead_in=round(float(rng.uniform(*EDGE_SECONDS)), 3), utterances=tuple(utterances),
            floor_seed=int(rng.integers(2 ** 31))))
    return plans


def trim_silence(audio: np.ndarray, sample_rate: int, threshold_db: float = -35.0,
                 pad_seconds: float = 0.03) -> np.ndarray:
    """Cut leading and trailing samples quieter than threshold_db below the peak, keeping a pad."""
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak <= 0.0:
        return audio
    loud = np.flatnonzero(np.abs(audio) > peak * 10 ** (threshold_db / 20))
    pad = int(pad_seconds * sample_rate)
    return audio[max(0, loud[0] - pad): loud[-1] + pad + 1]


def _at_level(audio: np.ndarray, rms_dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    if rms <= 0.0:
        return audio
    gain = 10 ** (rms_dbfs / 20) / rms
    gain = min(gain, PEAK_LIMIT / float(np.abs(audio).max()))
    return (audio * gain).astype(np.float32)


def _join(language: str, texts: list[str]) -> str:
    return (" " if language == "en" else "").join(texts)


def render_recording(plan: RecordingPlan) -> tuple[np.ndarray, int, list[dict]]:
    """Synthesize a recording: (audio, sample_rate, utterance spans with exact sample positions)."""
    voices = {name: get_voice(name) for name in dict.fromkeys(u.voice for u in plan.utterances)}
    sample_rate = voices[plan.utterances[0].voice].sample_rate
    pieces = [np.zeros(int(round(plan.lead_in * sample_rate)), np.float32)]
    cursor = pieces[0].size
    spans = []
    for utterance in plan.utterances:
        voice = voices[utterance.voice]
        speech = voice.synthesize(utterance.text, seed=utterance.tts_seed)
        speech = _at_level(trim_silence(resample(speech, voice.sample_rate, sample_rate), sample_rate),
                           utterance.rms_dbfs)
        if speech.size == 0:
            raise FunfactoryError(f"voice {utterance.voice} produced no audio for {utterance.text!r}")
        spans.append({"start": round(cursor / sample_rate, 6), "end": round((cursor + speech.size) / sample_rate, 6),
                      "text": utterance.text, "language": plan.language, "voice": utterance.voice})
        gap = np.zeros(int(round(utterance.gap_after * sample_rate)), np.float32)
        pieces += [speech, gap]
        cursor += speech.size + gap.size
    audio = np.concatenate(pieces)
    floor = np.random.default_rng(plan.floor_seed).standard_normal(audio.size).astype(np.float32)
    audio = audio + floor * np.float32(10 ** (NOISE_FLOOR_DBFS / 20))
    if plan.channels == 2:
        audio = np.stack([audio, audio * np.float32(0.8)], axis=1)
    return audio, sample_rate, spans


def _manifest_row(plan: RecordingPlan, sample_rate: int, frames: int, spans: list[dict]) -> dict:
    return {"id": plan.id, "uri": plan.uri, "language": plan.language, "published_at": plan.published_at,
            "duration": round(frames / sample_rate, 6), "sample_rate": sample_rate, "channels": plan.channels,
            "format": plan.audio_format, "text": _join(plan.language, [span["text"] for span in spans]),
            "utterances": spans}


def build_recording(root: Path, plan: RecordingPlan) -> dict:
    """Make one recording under root/audio unless a finished one from the same plan is there."""
    audio_path = root / plan.uri
    sidecar = root / STATE_DIR / f"{plan.id}.json"
    plan_sha = plan.sha256()
    if audio_path.is_file() and sidecar.is_file():
        done = json.loads(sidecar.read_text(encoding="utf-8"))
        if done.get("plan_sha256") == plan_sha:
            return done["manifest"]
    started = time.perf_counter()
    audio, sample_rate, spans = render_recording(plan)
    audio_path.parent.mkdir(parents=True, exist_ok=True)
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    write_audio(audio_path, audio, sample_rate)
    row = _manifest_row(plan, sample_rate, len(audio), spans)
    temporary = sidecar.with_name(f".{sidecar.name}.tmp")
    temporary.write_text(json.dumps({"plan_sha256": plan_sha, "manifest": row}, ensure_ascii=False, sort_keys=True),
                         encoding="utf-8")
    temporary.replace(sidecar)
    logger.info("recording %s: %.1f s of audio in %.1f s", plan.id, row["duration"], time.perf_counter() - started)
    return row


def build_corpus(out_dir: str | os.PathLike, seed: int = 0, scale: str = "default",
                 noise_dirs: list[str | os.PathLike] | None = None) -> CorpusInfo:
    """Build (or finish) the default corpus in out_dir; deterministic for (seed, scale)."""
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    search_dirs = [Path(folder) for folder in noise_dirs] if noise_dirs else None
    plans = plan_corpus(seed, scale)
    noise = build_real_noise(root, search_dirs)
    rirs = build_rir(root, search_dirs)
    babble_pools = {language: load_sentences(language) for language in LANGUAGES}
    noise += build_babble(root, babble_pools, SCALES[scale].babble_clips, SCALES[scale].babble_seconds)
    rows = [build_recording(root, plan) for plan in plans]
    write_jsonl(root / "manifest.jsonl", rows)
    write_jsonl(root / "noise" / "manifest.jsonl", noise)
    write_jsonl(root / "rir" / "manifest.jsonl", rirs)
    speech = sum(span["end"] - span["start"] for row in rows for span in row["utterances"])
    info = CorpusInfo(
        root=root, seed=seed, scale=scale, generator_version=GENERATOR_VERSION,
        counts={"recordings": len(rows), "utterances": sum(len(row["utterances"]) for row in rows),
                "recordings_by_language": {language: sum(row["language"] == language for row in rows)
                                           for language in LANGUAGES},
                "noise_clips": len(noise), "noise_by_split": {split: sum(n["split"] == split for n in noise)
                                                               for split in ("train", "test")},
                "rirs": len(rirs)},
        hours={"audio": round(sum(row["duration"] for row in rows) / 3600, 6),
               "speech": round(speech / 3600, 6),
               "noise": round(sum(n["duration"] for n in noise) / 3600, 6)})
    summary = {"seed": seed, "scale": scale, "generator_version": GENERATOR_VERSION,
               "counts": info.counts, "hours": info.hours}
    temporary = root / ".corpus.json.tmp"
    temporary.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    temporary.replace(root / "corpus.json")
    return info


def default_corpus(scale: str = "tiny", seed: int = 0) -> CorpusInfo:
    """The corpus for (scale, seed) under $FUNFACTORY_CACHE/corpus, built once.

    Concurrent first calls (pytest workers, parallel demo steps) wait on a lock file; the build runs
    in a `.partial` folder (resumable after a crash) that is renamed into place when complete.
    """
    if scale not in SCALES:
        raise FunfactoryError(f"unknown corpus scale {scale!r}; choose one of {', '.join(SCALES)}")
    parent = cache_root() / "corpus"
    final = parent / f"{scale}-seed{seed}-v{GENERATOR_VERSION}"
    if (final / "corpus.json").is_file():
        return CorpusInfo.load(final)
    with file_lock(parent / f".{final.name}.lock"):
        if not (final / "corpus.json").is_file():
            if final.exists():
                shutil.rmtree(final)
            partial = parent / f".{final.name}.partial"
            build_corpus(partial, seed=seed, scale=scale)
            os.replace(partial, final)
    return CorpusInfo.load(final)
