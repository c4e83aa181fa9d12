"""Online noise augmentation for the training loader (Fun-ASR section 5.2: noise is mixed into a
share of the training data; here on the fly, so every epoch hears new noise).

The same mixing rule as the offline augment pipeline (`pipelines/augment/mixing.py`, which follows
audiomentations' AddBackgroundNoise): SNR ~ N(mean, std) clipped to [min, max], noise RMS =
speech RMS / 10^(SNR/20) over the whole clip, noise looped from a random offset, speech and noise
scaled down together when the sum would clip. It is written again here in plain numpy because the
training side must not import the pipelines (docs/architecture.md, layout) and the loader must stay cheap:
every noise clip is decoded once into memory, and a call costs two dot products and one add.

Which noise may be used comes from a noise manifest (JSON lines with `id`, `path`, `split`), the
one `funfactory pipeline augment noise-split > noise.jsonl` prints and the augment pipeline writes
as `noise-manifest.jsonl`: only `split == "train"` clips are loaded, so test-time noise never
reaches training.

Use with the loader (`training/loader.py` decides which samples, by `augment.fraction`):

    augmenter = OnlineNoiseAugmenter.from_options({"noise_manifest": "noise.jsonl"})
    loader = StreamingLoader(config, augmenter=augmenter)   # calls augmenter(audio, meta, rng)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from funfactory.errors import FunfactoryError

SAMPLE_RATE = 16000
PEAK_LIMIT = 0.99
MIN_SPEECH_RMS = 1e-5


@dataclass(frozen=True)
class NoiseBank:
    """Noise clips decoded once: ids and float32 arrays at 16 kHz."""

    ids: tuple[str, ...]
    clips: tuple[np.ndarray, ...]

    @classmethod
    def from_manifest(cls, manifest: str | Path, split: str = "train") -> NoiseBank:
        import soundfile as sf
        import soxr

        path = Path(manifest)
        if not path.is_file():
            raise FunfactoryError(f"noise manifest {manifest} does not exist; write one with "
                                  "`funfactory pipeline augment noise-split > noise.jsonl`")
        ids, clips = [], []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                clip_path = Path(row["path"])
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise FunfactoryError(f"noise manifest {manifest} line {n}: needs a JSON object "
                                      f"with 'path' ({e})") from None
            if row.get("split", "train") != split:
                continue
            clip_path = clip_path if clip_path.is_absolute() else path.parent / clip_path
            audio, rate = sf.read(str(clip_path), dtype="float32", always_2d=True)
            mono = audio.mean(axis=1)
            if rate != SAMPLE_RATE:
                mono = soxr.resample(mono, rate, SAMPLE_RATE)
            mono = np.ascontiguousarray(mono - mono.mean(), dtype=np.float32)
            if mono.size and np.any(mono):
                ids.append(str(row.get("id") or clip_path.stem))
                clips.append(mono)
        if not clips:
            raise FunfactoryError(f"noise manifest {manifest} has no usable {split!r} clips")
        return cls(tuple(ids), tuple(clips))


class OnlineNoiseAugmenter:
    """`augmenter(audio, meta, rng) -> (noisy audio, meta with an 'augment' record)`.

    `fraction` is used by `maybe_augment` only; the training loader makes that decision itself
    (its `augment.fraction`, default 0.3) and calls the augmenter on the chosen samples.
    """

    def __init__(self, bank: NoiseBank, *, snr_mean_db: float = 10.0, snr_std_db: float = 5.0,
                 snr_min_db: float = -5.0, snr_max_db: float = 30.0, fraction: float = 0.3):
        if snr_std_db < 0 or snr_min_db > snr_max_db or not 0 <= fraction <= 1:
            raise FunfactoryError(f"online noise: SNR N({snr_mean_db}, {snr_std_db}) in "
                                  f"[{snr_min_db}, {snr_max_db}] and fraction {fraction} are not "
                                  "valid (std >= 0, min <= max, 0 <= fraction <= 1)")
        self.bank = bank
        self.snr = (snr_mean_db, snr_std_db, snr_min_db, snr_max_db)
        self.fraction = fraction

    @classmethod
    def from_options(cls, options: dict) -> OnlineNoiseAugmenter:
        """From the loader config's `augment.options` (strings): `noise_manifest` (required),
        `split` (default train), `snr_mean_db`, `snr_std_db`, `snr_min_db`, `snr_max_db`,
        `fraction`."""
        known = {"noise_manifest", "split", "snr_mean_db", "snr_std_db", "snr_min_db",
                 "snr_max_db", "fraction"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise FunfactoryError(f"online noise options {unknown} are unknown; known: "
                                  f"{sorted(known)}")
        if "noise_manifest" not in options:
            raise FunfactoryError("online noise needs augment.options.noise_manifest (write one "
                                  "with `funfactory pipeline augment noise-split > noise.jsonl`)")
        bank = NoiseBank.from_manifest(options["noise_manifest"], options.get("split", "train"))
        numbers = {k: float(v) for k, v in options.items() if k not in ("noise_manifest", "split")}
        return cls(bank, **numbers)

    def draw_snr(self, rng: np.random.Generator) -> float:
        mean, std, low, high = self.snr
        return float(min(max(rng.normal(mean, std), low), high))

    def __call__(self, audio: np.ndarray, meta: dict,
                 rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        speech = np.asarray(audio, np.float32)
        n = speech.size
        speech_power = float(np.dot(speech, speech)) / max(n, 1)
        if n == 0 or speech_power < MIN_SPEECH_RMS ** 2:
            return audio, meta  # silent or noise-only: no speech level to set an SNR against
        index = int(rng.integers(len(self.bank.clips)))
        clip = self.bank.clips[index]
        offset = int(rng.integers(clip.size))
        snr_db = self.draw_snr(rng)
        noise = _looped(clip, offset, n)
        noise_power = float(np.dot(noise, noise)) / n
        if noise_power <= 0:
            return audio, meta
        gain = np.float32(np.sqrt(speech_power / noise_power) / 10 ** (snr_db / 20))
        mixed = speech + gain * noise
        peak = float(np.max(np.abs(mixed)))
        output_gain = 1.0
        if peak > PEAK_LIMIT:
            output_gain = PEAK_LIMIT / peak
            mixed *= np.float32(output_gain)
        meta = dict(meta)
        meta["augment"] = {"kind": "online_noise", "noise_id": self.bank.ids[index],
                           "noise_offset": round(offset / SAMPLE_RATE, 4),
                           "noise_offset_samples": offset, "snr_db": snr_db, "noise_gain": float(gain),
                           "output_gain": output_gain, "parent": meta.get("augment")}
        return mixed, meta

    def maybe_augment(self, audio: np.ndarray, meta: dict,
                      rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """Mix noise into `fraction` of the calls (for users without the training loader)."""
        if rng.random() < self.fraction:
            return self(audio, meta, rng)
        return audio, meta


def _looped(clip: np.ndarray, offset: int, length: int) -> np.ndarray:
    if offset + length <= clip.size:
        return clip[offset:offset + length]
    pieces = [clip[offset:]]
    remaining = length - pieces[0].size
    while remaining > 0:
        pieces.append(clip[:remaining])
        remaining -= pieces[-1].size
    return np.concatenate(pieces)
