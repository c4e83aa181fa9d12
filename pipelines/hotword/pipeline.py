"""The hotword data Beam job (Fun-ASR section 5.5; steps in `funfactory.synth.hotwords`).

    recordings -> utterances -> MineHotwords (names, terms, rare words from each reference)
      -> pool of every utterance's hotwords (side input)
      -> per unit: AssembleHotwords: each utterance with its hotwords plus 0..`max_distractors`
         distractors from other recordings; `noise_only_per_unit` noise-only samples (real noise,
         empty label) whose hotword lists hold distractors only
      -> WriteUnits -> shards + run report.

Babble is speech, so noise-only samples draw only non-speech noise categories.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam
import numpy as np

from funfactory import __version__
from funfactory.eval.textnorm import detect_language, normalize_label
from funfactory.shards.keys import segment_key
from funfactory.shards.schema import new_meta
from funfactory.synth import hotwords as hw
from funfactory.synth.contextual import stable_seed

PIPELINE = "hotword"
PAD_S = 0.1


@dataclass
class HotwordConfig:
    corpus_scale: str = "tiny"  # input when no shards are given, and the noise source
    corpus_seed: int = 0
    max_hotwords: int = 8  # true hotwords per utterance
    rare_zipf: float = 3.5
    max_distractors: int = 200
    zero_distractor_share: float = 0.1
    noise_only_per_unit: int = 1
    noise_seconds: tuple[float, float] = (1.0, 4.0)
    noise_rms_dbfs: tuple[float, float] = (-40.0, -22.0)
    limit_units: int = 0
    seed: int = 0
    dataset: str = "hotword"
    split: str = "train"
    max_count: int = 1000


def utterance_records(recordings: list[dict]) -> list[dict]:
    return [{"unit": rec["unit"], "index": i, "text": u["text"], "start": u["start"],
             "end": u["end"], "language": rec["language"],
             "key": segment_key(rec["source_id"], i, "hw")}
            for rec in recordings for i, u in enumerate(rec["utterances"])]


class MineHotwords(beam.DoFn):
    def __init__(self, config: HotwordConfig):
        self.config = config

    def setup(self):
        self.miner = hw.HotwordMiner(rare_zipf=self.config.rare_zipf,
                                     max_hotwords=self.config.max_hotwords)

    def process(self, record):
        found = self.miner.mine(record["text"])
        yield {**record, "hotwords": [h.as_dict() for h in found]}


def noise_clips(scale: str, seed: int) -> list[dict]:
    from funfactory.synth.corpus import default_corpus
    corpus = default_corpus(scale, seed)
    return [{"id": row["id"], "path": str(corpus.path(row["uri"])), "category": row["category"]}
            for row in corpus.noise("train") if row["category"] != "babble"]


class AssembleHotwords(beam.DoFn):
    def __init__(self, config: HotwordConfig, config_sha256: str, noise: list[dict]):
        self.config, self.sha = config, config_sha256
        self.noise = noise

    def setup(self):
        from funfactory.pipelines.context.inputs import RecordingAudio
        self.audio = RecordingAudio()
        self._noise_cache: dict[str, np.ndarray] = {}

    def _noise(self, clip: dict) -> np.ndarray:
        from funfactory.pipelines.augment.noise_corpus import load_audio_16k
        if clip["id"] not in self._noise_cache:
            self._noise_cache[clip["id"]] = load_audio_16k(clip["path"])
        return self._noise_cache[clip["id"]]

    def process(self, element, pool, recordings):
        unit, records = element
        rec = recordings[unit]
        config = self.config
        others = sorted({word for origin, word in pool if origin != unit})
        yields: Counter = Counter()
        for record in sorted(records, key=lambda r: r["index"]):
            true = [h["text"] for h in record["hotwords"]]
            rng = np.random.default_rng(stable_seed(record["key"], "distractors", config.seed))
            count = hw.distractor_count(rng, config.max_distractors, config.zero_distractor_share)
            hotwords, distractors = hw.build_hotword_list(
                true, record["text"], others, count,
                stable_seed(record["key"], "list", config.seed))
            audio = self.audio.cut(rec, record["start"] - PAD_S, record["end"] + PAD_S)
            language = detect_language(record["text"]) or record["language"]
            meta = new_meta(
                key=record["key"], text=normalize_label(record["text"], language),
                raw_text=record["text"], language=language, duration=audio.size / 16000,
                task="hotword", source_id=rec["source_id"], uri=rec["uri"],
                offset=max(0.0, record["start"] - PAD_S), published_at=rec["published_at"],
                pipeline=PIPELINE, version=__version__, config_sha256=self.sha,
                hotword={"true": record["hotwords"], "distractors": len(distractors)},
                synth={"generator": "reference-miner", "seed": config.seed,
                       "rare_zipf": config.rare_zipf})
            meta["prompt"]["hotwords"] = hotwords
            yields["samples"] += 1
            yields["samples_with_true_hotwords"] += bool(true)
            yields["true_hotwords"] += len(true)
            yields["distractors"] += len(distractors)
            yields["samples_without_distractors"] += not distractors
            for h in record["hotwords"]:
                yields[f"hotword_kind/{h['kind']}"] += 1
            yield unit, "sample", (meta, audio)
        noise_count = config.noise_only_per_unit if self.noise and others else 0
        for j in range(noise_count):
            key = segment_key(rec["source_id"], 90000 + j, "hwnoise")
            rng = np.random.default_rng(stable_seed(key, "noise", config.seed))
            clip = self.noise[int(rng.integers(len(self.noise)))]
            noise = self._noise(clip)
            length = min(noise.size, int(rng.uniform(*config.noise_seconds) * 16000))
            start = int(rng.integers(0, noise.size - length + 1))
            stretch = noise[start:start + length].astype(np.float64)
            rms = float(np.sqrt(np.mean(stretch ** 2))) or 1.0
            level = 10 ** (rng.uniform(*config.noise_rms_dbfs) / 20)
            audio = np.clip(stretch * (level / rms), -1.0, 1.0).astype(np.float32)
            hotwords = hw.noise_only_hotwords(others, stable_seed(key, "list", config.seed))
            meta = new_meta(
                key=key, text="", language="", duration=audio.size / 16000, task="noise_only",
                source_id=rec["source_id"], uri=f"noise:{clip['id']}", offset=start / 16000,
                published_at=rec["published_at"], pipeline=PIPELINE, version=__version__,
                config_sha256=self.sha,
                hotword={"true": [], "distractors": len(hotwords)},
                augment={"noise_id": clip["id"], "category": clip["category"],
                         "rms_dbfs": round(20 * np.log10(level), 2), "noise_only": True},
                synth={"generator": "noise-only-hotwords", "seed": config.seed})
            meta["prompt"]["hotwords"] = hotwords
            yields["noise_only_samples"] += 1
            yield unit, "sample", (meta, audio)
        yield unit, "unit", {"uri": rec["uri"], "seconds_in": rec["duration"],
                             "segments": len(records) + noise_count, "yields": dict(yields)}


def run_hotword(out_dir: str | Path, config: HotwordConfig, shards: str | None = None,
                options=None, restart: bool = False) -> dict:
    from funfactory.config import config_sha256
    from funfactory.pipelines.context.inputs import corpus_recordings, shard_recordings
    from funfactory.pipelines.synthesis_job import run_units_job

    recordings = (shard_recordings(shards) if shards
                  else corpus_recordings(config.corpus_scale, config.corpus_seed))
    if config.limit_units:
        recordings = recordings[:config.limit_units]
    by_unit = {rec["unit"]: rec for rec in recordings}
    records = utterance_records(recordings)
    noise = noise_clips(config.corpus_scale, config.corpus_seed) if config.noise_only_per_unit else []
    sha = config_sha256(dataclasses.asdict(config) | {"input": shards or "corpus"})

    def build(p, todo):
        wanted = set(todo)
        mined = (p | "Utterances" >> beam.Create(records, reshuffle=False)
                 | "Spread" >> beam.Reshuffle()
                 | "Mine" >> beam.ParDo(MineHotwords(config)))
        pool = mined | "Pool" >> beam.FlatMap(
            lambda r: [(r["unit"], h["text"]) for h in r["hotwords"]])
        return (mined
                | "Pending" >> beam.Filter(lambda r: r["unit"] in wanted)
                | "KeyByUnit" >> beam.Map(lambda r: (r["unit"], r))
                | "GroupByUnit" >> beam.GroupByKey()), (
            beam.pvalue.AsList(pool),
            beam.pvalue.AsDict(p | "Recordings" >> beam.Create(sorted(by_unit.items()))))

    return run_units_job(PIPELINE, out_dir, sha, list(by_unit),
                         AssembleHotwords(config, sha, noise), build,
                         dataset=config.dataset,
                         split=config.split, options=options, restart=restart,
                         max_count=config.max_count)
