"""One labelled sample in, its augmented samples out: the per-sample work of the augment pipeline
(sections 5.2 and 5.6), free of Beam so the bench and tests can call it directly.

Every random choice comes from a generator seeded by (seed, sample key, purpose), so a sample's
noise clip, offset, SNR, padding and response are the same whatever worker or order handles it.
"""

from __future__ import annotations

import copy

import numpy as np

from funfactory import __version__
from funfactory.errors import FunfactoryError
from funfactory.pipelines.augment.config import AugmentConfig
from funfactory.pipelines.augment.mixing import (MIN_SPEECH_RMS, SnrDistribution, mix_at_snr,
                                                 noise_segment, sample_rng)
from funfactory.pipelines.augment.noise_corpus import NoiseClip
from funfactory.pipelines.augment.noise_only import (SAMPLE_RATE, SpeechDetector,
                                                     noise_only_from_padding)
from funfactory.pipelines.augment.rir import ImpulseResponse, apply_rir
from funfactory.pipelines.augment.samples import Derived, Rejected
from funfactory.shards.schema import KEY_PATTERN

PIPELINE = "augment"


def derived_key(key: str, suffix: str) -> str:
    derived = f"{key}-{suffix}"
    if not KEY_PATTERN.match(derived):
        raise FunfactoryError(f"sample key {key!r} is too long or not dot-free to derive "
                              f"{derived!r}")
    return derived


def choose_clip(rng: np.random.Generator, clips: list[NoiseClip]) -> NoiseClip:
    """A collection uniformly, then a clip of it uniformly: a collection of many short files
    (stadium crowds) does not drown one of a few long loops."""
    collections = sorted({c.collection for c in clips})
    collection = collections[int(rng.integers(len(collections)))]
    members = [c for c in clips if c.collection == collection]
    return members[int(rng.integers(len(members)))]


class SampleAugmenter:
    def __init__(self, config: AugmentConfig, clips: list[NoiseClip],
                 responses: list[ImpulseResponse] | None = None,
                 detector: SpeechDetector | None = None, config_sha256: str = ""):
        self.config = config
        self.snr = SnrDistribution(**vars(config.snr))
        self.clips = clips
        self.quiet_clips = [c for c in clips if not c.speech_like]
        if config.noise_only.share > 0 and not self.quiet_clips:
            raise FunfactoryError("noise-only samples need noise that is not babble; add a "
                                  "non-babble noise source or set noise_only.share=0")
        if config.rir.probability > 0 and not responses:
            raise FunfactoryError("rir.probability > 0 needs impulse responses (rir.paths)")
        self.responses = responses or []
        self.detector = detector
        self.config_sha256 = config_sha256

    def _lineage(self, meta: dict) -> dict:
        return {"pipeline": PIPELINE, "version": __version__, "config_sha256": self.config_sha256,
                "parent": meta.get("lineage")}

    def derive(self, meta: dict, audio: np.ndarray) -> tuple[list[Derived], list[Rejected]]:
        out: list[Derived] = []
        rejected: list[Rejected] = []
        cfg = self.config
        key = meta["key"]
        if cfg.keep_clean:
            out.append(Derived(meta, audio))
        if float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) < MIN_SPEECH_RMS:
            return out, [Rejected(key, "silent_input", "speech RMS below "
                                  f"{MIN_SPEECH_RMS:g}: no level to set an SNR against")]
        if sample_rng(cfg.seed, key, "noisy?").random() < cfg.noisy_share:
            out.append(self.noisy(meta, audio))
        if sample_rng(cfg.seed, key, "noise_only?").random() < cfg.noise_only.share:
            derived = self.noise_only(meta, audio)
            if isinstance(derived, Rejected):
                rejected.append(derived)
            else:
                out.append(derived)
        if not out and not rejected:
            rejected.append(Rejected(key, "not_selected",
                                     f"drawn neither noisy (noisy_share {cfg.noisy_share}) nor "
                                     f"noise-only (noise_only.share {cfg.noise_only.share}), and "
                                     "keep_clean is off"))
        return out, rejected

    def noisy(self, meta: dict, audio: np.ndarray) -> Derived:
        rng = sample_rng(self.config.seed, meta["key"], "noisy")
        clip = choose_clip(rng, self.clips)
        offset = int(rng.integers(clip.audio.size))
        snr_db = round(self.snr.draw(rng), 3)
        response = None
        if self.responses and rng.random() < self.config.rir.probability:
            response = self.responses[int(rng.integers(len(self.responses)))]
            audio = apply_rir(audio, response)
        mix = mix_at_snr(audio, noise_segment(clip.audio, audio.size, offset), snr_db)
        new = copy.deepcopy(meta)
        new["key"] = derived_key(meta["key"], "noise")
        new["augment"] = {
            "kind": "noise", "parent_key": meta["key"], "noise_id": clip.id,
            "noise_collection": clip.collection, "noise_split": clip.split,
            "noise_offset": round(offset / SAMPLE_RATE, 4),
            "noise_looped": offset + audio.size > clip.audio.size,
            "snr_db": snr_db, "noise_gain": mix.noise_gain, "output_gain": mix.output_gain,
            "rir_id": response.id if response else None, "padding": None,
        }
        new["lineage"] = self._lineage(meta)
        return Derived(new, mix.audio)

    def noise_only(self, meta: dict, audio: np.ndarray) -> Derived | Rejected:
        cfg = self.config.noise_only
        rng = sample_rng(self.config.seed, meta["key"], "noise_only")
        seconds = round(float(rng.uniform(cfg.min_seconds, cfg.max_seconds)), 3)
        tries = []
        for attempt in range(max(1, cfg.max_tries)):
            clip = choose_clip(rng, self.quiet_clips)
            offset = int(rng.integers(clip.audio.size))
            snr_db = round(self.snr.draw(rng), 3)
            made = noise_only_from_padding(audio, clip.audio, offset, snr_db, seconds)
            heard = self.detector.speech_seconds(made.audio) if cfg.vad_check and self.detector \
                else None
            if not heard:
                break
            tries.append(f"{clip.id}@{offset / SAMPLE_RATE:.2f}s: {heard:.2f}s speech")
        else:
            return Rejected(meta["key"], "vad_speech_in_noise",
                            f"every noise stretch tried had speech by silero-vad: {tries}")
        new = copy.deepcopy(meta)
        new.update({
            "key": derived_key(meta["key"], "noiseonly"), "text": "", "raw_text": "",
            "task": "noise_only", "labels": None, "stream": None,
            "duration": round(made.padding_samples / SAMPLE_RATE, 4),
        })
        new["prompt"] = {"context": [], "hotwords": [], "previous_text": None}
        new["augment"] = {
            "kind": "noise_only", "parent_key": meta["key"], "noise_id": clip.id,
            "noise_collection": clip.collection, "noise_split": clip.split,
            "noise_offset": round(offset / SAMPLE_RATE, 4),
            "noise_looped": offset + made.mix.audio.size > clip.audio.size,
            "snr_db": snr_db, "noise_gain": made.mix.noise_gain,
            "output_gain": made.mix.output_gain, "rir_id": None,
            "padding": {"before_seconds": seconds, "kept": "padding", "vad_rejected": tries,
                        "vad_checked": bool(cfg.vad_check and self.detector)},
        }
        new["lineage"] = self._lineage(meta)
        return Derived(new, made.audio)
