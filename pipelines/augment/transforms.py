"""Beam pieces of the augment pipeline: the per-worker augmenter factory and the report row, used
with the shard-to-shards DoFn (`shardwise.DeriveUnits`)."""

from __future__ import annotations


class BuildAugmenter:
    """Picklable: builds a `SampleAugmenter` on the worker, loading noise, responses and the VAD
    once per worker rather than per sample."""

    def __init__(self, config, config_sha256: str):
        self.config = config
        self.config_sha256 = config_sha256

    def __call__(self):
        from funfactory.pipelines.augment.augmenter import SampleAugmenter
        from funfactory.pipelines.augment.noise_corpus import NoiseCorpus
        from funfactory.pipelines.augment.noise_only import SpeechDetector
        from funfactory.pipelines.augment.rir import load_impulse_responses

        cfg = self.config
        corpus = NoiseCorpus.from_sources(cfg.noise.sources)
        clips = corpus.select(cfg.noise.split)
        for clip in clips:
            clip.audio  # noqa: B018 - decode every clip once per worker, not per sample
        responses = load_impulse_responses(cfg.rir.paths) if cfg.rir.probability > 0 else None
        detector = SpeechDetector() if cfg.noise_only.vad_check and cfg.noise_only.share > 0 \
            else None
        return SampleAugmenter(cfg, clips, responses, detector, self.config_sha256)


def augment_row(meta: dict) -> dict:
    aug = meta.get("augment") or {}
    return {"key": meta["key"], "task": meta["task"], "kind": aug.get("kind", "clean"),
            "parent_key": aug.get("parent_key", meta["key"]), "snr_db": aug.get("snr_db"),
            "noise_id": aug.get("noise_id"), "noise_split": aug.get("noise_split"),
            "rir_id": aug.get("rir_id"), "duration": meta["duration"]}


def augment_units_fn(config, config_sha256: str):
    from funfactory.pipelines.augment.shardwise import DeriveUnits

    return DeriveUnits("augment", BuildAugmenter(config, config_sha256), augment_row)
