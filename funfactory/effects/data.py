"""The shard sets of an effects run, each made by the project's own pipelines from TTS speech
with known text (`funfactory.demo_speech`, and for the hotword sets the hotword sentences of
`funfactory.effects.hotword_speech`): every command is a `funfactory` command line, listed in the
run's `commands.sh`. A set whose folder already holds an index is not made again.

| set | made by | from |
| --- | --- | --- |
| `train` | an even subset of the training utterances, the speech every run trains on | speech `train/` |
| `test-clean` | an even subset of the held-out sentences (training voices) | speech `heldout/` |
| `train-subset` | an even subset of `train` | `train` |
| `augment-train` | `pipeline augment run` (train noise, SNR ~ N(10, 5) dB), no noise-only | `train` |
| `noise-only-train` | `pipeline augment run` with noise-only samples only (section 5.6) | `train` |
| `noisy-test` | `pipeline augment run` with the *test* noise split, one noisy copy and one noise-only sample per utterance | `test-clean` |
| `silent-test` | digital silence and near-silent dither, empty labels | written here |
| `streaming-train`, `streaming-test` | `pipeline streaming run` (720 ms prefixes, aligned partial text) | `train-subset`, `test-clean` |
| `hotword-train`, `hotword-test` | `pipeline hotword run` (mined hotwords plus distractors; noise-only inputs with distractor lists for training) | hotword speech `train/`, `heldout/` |
| `rl-source` | the RL job's candidates: hotword training utterances, half as many each of their noise-only inputs, plain training utterances and noise-only training samples | `hotword-train`, `train-subset`, `noise-only-train` |
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from funfactory.demo_stages import cli
from funfactory.errors import FunfactoryError
from funfactory.effects.plan import EffectsRun


def _done(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*.parquet"))


def even_subset(source: Path, out: Path, dataset: str, split: str, count: int) -> Path:
    """`count` samples of `source` taken at even strides (so every voice is represented),
    copied bit-exact into new shards."""
    return even_mix([(source, None, count)], out, dataset, split)


def even_mix(parts: list[tuple[Path, Callable[[dict], bool] | None, int]], out: Path,
             dataset: str, split: str) -> Path:
    """For each (source, keep, count), `count` of the source's samples that `keep` accepts (all
    when None), taken at even strides and copied bit-exact, in order, into one new shard set."""
    from funfactory.effects.decoding import even
    from funfactory.shards.reader import ShardReader
    from funfactory.shards.writer import ShardWriter

    if _done(out):
        return out
    with ShardWriter(out, dataset, split) as writer:
        for source, keep, count in parts:
            samples = [s for s in ShardReader(source, decode=False)
                       if keep is None or keep(s.meta)]
            for sample in even(samples, count):
                writer.write_encoded(sample.meta, sample.flac)
    return out


def silent_inputs(out: Path, count: int, seed: int) -> Path:
    """Noise-only test inputs with no noise at all: digital silence and dither at -70 to -50 dBFS,
    1 to 4 s long, each with an empty label (what a recogniser must not write words for)."""
    from funfactory import __version__
    from funfactory.shards.schema import new_meta
    from funfactory.shards.writer import ShardWriter

    if _done(out):
        return out
    rng = np.random.default_rng([seed, 56])
    with ShardWriter(out, "silenttest", "test") as writer:
        for i in range(count):
            seconds = float(rng.uniform(1.0, 4.0))
            level = 0.0 if i % 2 == 0 else 10 ** (rng.uniform(-70, -50) / 20)
            audio = (level * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
            key = f"silence-{i:03d}"
            writer.write(new_meta(key=key, text="", language="en", duration=seconds,
                                  task="noise_only", source_id=key, uri="silence://",
                                  pipeline="effects", version=__version__, config_sha256="",
                                  level_dbfs=None if level == 0 else round(20 * np.log10(level), 1)),
                         audio)
    return out


def noise_manifest(run: EffectsRun) -> Path:
    """The online augmenter's noise manifest: what `funfactory pipeline augment noise-split`
    prints, kept in the run folder (only its train clips are ever loaded for training)."""
    from funfactory.pipelines.augment.noise_corpus import NoiseCorpus

    path = run.path("noise.jsonl")
    if not path.is_file():
        rows = NoiseCorpus.from_sources(["debian"]).manifest_rows()
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _augment(run: EffectsRun, source: Path, out: Path, overrides: list[str]) -> Path:
    if not _done(out):
        cli(run, "pipeline", "augment", "run", "--no-report",
            *[a for s in [f"seed={run.seed}", *overrides] for a in ("--set", s)], source, out)
    return out


def _streaming(run: EffectsRun, source: Path, out: Path, overrides: list[str]) -> Path:
    if not _done(out):
        cli(run, "pipeline", "streaming", "run", *[a for s in overrides for a in ("--set", s)],
            source, out)
    return out


def _hotword(run: EffectsRun, source: Path, out: Path, overrides: list[str]) -> Path:
    if not _done(out):
        cli(run, "pipeline", "hotword", "run", "--shards", source,
            *[a for s in [f"seed={run.seed}", *overrides] for a in ("--set", s)], out)
    return out


def build_sets(run: EffectsRun, speech: Path, names) -> dict[str, Path]:
    """The shard sets `names` (see the module's table) and those they are made from; the hotword
    speech is built (once, into the cache) only when a hotword set is wanted."""
    from funfactory.effects.hotword_speech import hotword_speech

    plan = run.plan
    shards = lambda name: run.path("shards", name)  # noqa: E731
    hotword_folder = lambda: hotword_speech(run.seed, plan.hotword_sentences)  # noqa: E731
    recipes = {
        "test-clean": ((), lambda s: even_subset(speech / "heldout", shards("test-clean"),
                                                 "testclean", "test", plan.test_utterances)),
        "train-subset": ((), lambda s: even_subset(s["train"], shards("train-subset"),
                                                   "trainsubset", "train", plan.subset)),
        "silent-test": ((), lambda s: silent_inputs(shards("silent-test"), plan.silent_inputs,
                                                    run.seed)),
        "augment-train": ((), lambda s: _augment(run, s["train"], shards("augment-train"),
                                                 ["noise_only.share=0", "dataset=noisy"])),
        "noise-only-train": ((), lambda s: _augment(
            run, s["train"], shards("noise-only-train"),
            ["noisy_share=0", f"noise_only.share={plan.noise_only_share}", "dataset=noiseonly"])),
        "noisy-test": (("test-clean",), lambda s: _augment(
            run, s["test-clean"], shards("noisy-test"),
            ["noise.split=test", "noise_only.share=1.0", "split=test", "dataset=noisytest"])),
        "streaming-train": (("train-subset",), lambda s: _streaming(
            run, s["train-subset"], shards("streaming-train"), [])),
        "streaming-test": (("test-clean",), lambda s: _streaming(
            run, s["test-clean"], shards("streaming-test"), ["split=test"])),
        "hotword-train": ((), lambda s: _hotword(
            run, hotword_folder() / "train", shards("hotword-train"), ["max_distractors=8"])),
        "hotword-test": ((), lambda s: _hotword(
            run, hotword_folder() / "heldout", shards("hotword-test"),
            ["split=test", "noise_only_per_unit=0", "zero_distractor_share=0"])),
        "rl-source": (("hotword-train", "train-subset", "noise-only-train"), lambda s: even_mix(
            [(s["hotword-train"], lambda m: m["task"] == "hotword", plan.rl_utterances),
             (s["hotword-train"], lambda m: m["task"] == "noise_only", plan.rl_utterances // 2),
             (s["train-subset"], None, plan.rl_utterances // 2),
             (s["noise-only-train"], None, plan.rl_utterances // 2)],
            shards("rl-source"), "rlsource", "train")),
    }
    sets: dict[str, Path] = {"train": even_subset(speech / "train", shards("train"), "train",
                                                  "train", plan.train_utterances)}

    def need(name: str) -> None:
        if name in sets:
            return
        if name not in recipes:
            raise FunfactoryError(f"no shard set named {name!r}; known: {sorted(recipes)}")
        deps, make = recipes[name]
        for dep in deps:
            need(dep)
        sets[name] = make(sets)

    for name in names:
        need(name)
    return sets
