"""Speech with known text for the demo's model: several TTS voices, held-out sentences and voice.

The demo's raw corpus holds about a minute of speech, too little to train a recogniser. This
builds tens of minutes more from the English sentence pool of `funfactory.synth` and the
demo's own sentences (`demo-sentences-en.txt`; distinct sentences matter more than steps for
a character CTC head, which otherwise memorises them) with several real TTS voices (section 3's
synthetic-data idea at small scale), as three shard sets:

- `train`: each training sentence spoken by hibari (a fast neural voice) and by one of the other
  training voices in turn, so every voice says different sentences and TTS time stays low;
- `heldout`: sentences no training utterance says (among them every English sentence of the
  demo's own corpus, so its test set stays unseen too), by every training voice;
- `unseen-voice`: the held-out sentences by a voice never used in training.

The audio is cached under `$FUNFACTORY_CACHE/demo-speech/<key>/` (the key covers the plan), so
a second demo run, or a fresh clone on the same machine, synthesises nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from funfactory.cache import cache_root, file_lock

TRAIN_VOICES = ("hibari-en", "piper-joe-en", "espeak-en", "espeak-en-f", "espeak-en-gb")
UNSEEN_VOICE = "kokoro-alpha"
HELDOUT_SENTENCES = 24
RECIPE_VERSION = "3"  # bump to rebuild the cached speech
EXTRA_SENTENCES = Path(__file__).with_name("demo-sentences-en.txt")
# Rough synthesis cost of one utterance per voice, in tenths of a second on one core (a guess
# from the engines' real-time factors; other voices count 4), to cut the work into parts of
# about PART_COST that finish together.
VOICE_COST = {"hibari-en": 1, "piper-joe-en": 4, "espeak-en": 1, "espeak-en-f": 1,
              "espeak-en-gb": 1, "kokoro-alpha": 20}
PART_COST = 200


@dataclass(frozen=True)
class SpeechPlan:
    train: tuple[str, ...]
    heldout: tuple[str, ...]
    seed: int
    unseen_voice: bool = True  # also build `unseen-voice/` (the held-out sentences by UNSEEN_VOICE)

    def sha256(self) -> str:
        payload = json.dumps([RECIPE_VERSION, TRAIN_VOICES,
                              UNSEEN_VOICE if self.unseen_voice else None, self.train,
                              self.heldout, self.seed])
        return hashlib.sha256(payload.encode()).hexdigest()

    def key(self) -> str:
        return self.sha256()[:16]


def plan_speech(seed: int, keep_out: list[str]) -> SpeechPlan:
    """Held-out sentences: `keep_out` (the demo corpus's own sentences) topped up at random."""
    from funfactory.synth.corpus import load_sentences

    pool = load_sentences("en") + [line.strip() for line in EXTRA_SENTENCES.read_text(
        encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]
    rng = np.random.default_rng([seed, 1717])
    heldout = [s for s in pool if s in set(keep_out)]
    for i in rng.permutation(len(pool)):
        if len(heldout) >= HELDOUT_SENTENCES:
            break
        if pool[i] not in heldout:
            heldout.append(pool[i])
    train = [s for s in pool if s not in set(heldout)]
    return SpeechPlan(tuple(train), tuple(heldout), seed)


# Voices of this plan only: espeak-ng variants with another pitch, rate or accent.
ESPEAK_VARIANTS = {"espeak-en-f": ("en-us+f3", 150, 65), "espeak-en-gb": ("en+m3", 170, 40)}


def _voice(name: str):
    if name in ESPEAK_VARIANTS:
        from funfactory.synth.tts.espeak_voice import EspeakVoice

        voice, rate, pitch = ESPEAK_VARIANTS[name]
        return EspeakVoice(name, voice, ("en",), words_per_minute=rate, pitch=pitch)
    from funfactory.synth.tts import get_voice

    return get_voice(name)


def _speak(voice, text: str, seed: int) -> np.ndarray:
    from funfactory.synth.corpus import trim_silence
    from funfactory.synth.tts import resample

    audio = resample(voice.synthesize(text, seed=seed), voice.sample_rate, 16000)
    audio = trim_silence(audio.astype(np.float32), 16000)
    peak = float(np.abs(audio).max()) or 1.0
    return (audio * (0.5 / peak)).astype(np.float32)


def _speak_part(name: str, part: list[tuple[str, int]]) -> list[np.ndarray]:
    voice = _voice(name)
    return [_speak(voice, text, seed) for text, seed in part]


def _speak_in_parallel(jobs: dict[str, list[tuple[str, str, str, int]]]) -> dict[str, list]:
    """Every voice's utterances, synthesised by one process per core: each TTS engine runs on
    one thread, and a voice's list is cut into parts (slow voices into more) so the processes
    end together. The audio is the same as speaking them in order in one process."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    cost = {name: VOICE_COST.get(name, 4) for name in jobs}
    parts = [(name, start, items[start:start + PART_COST // cost[name]])
             for name, items in jobs.items()
             for start in range(0, len(items), PART_COST // cost[name])]
    parts.sort(key=lambda p: -len(p[2]) * cost[p[0]])  # longest first
    workers = max(1, min(len(parts), os.cpu_count() or 1))
    out: dict[str, list] = {name: [None] * len(items) for name, items in jobs.items()}
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [(name, start, pool.submit(_speak_part, name, [(t, s) for _, _, t, s in part]))
                   for name, start, part in parts]
        for name, start, future in futures:
            for k, audio in enumerate(future.result()):
                out[name][start + k] = audio
    return out


def _write_set(out: Path, dataset: str, items: list[tuple[str, str, str, np.ndarray]],
               config_sha256: str, pool: str) -> None:
    from funfactory import __version__
    from funfactory.shards.schema import new_meta
    from funfactory.shards.writer import ShardWriter

    with ShardWriter(out, dataset, "train" if dataset == "train" else "test") as writer:
        for key, text, voice, audio in items:
            writer.write(new_meta(key=key, text=text, language="en", duration=len(audio) / 16000,
                                  source_id=key, uri=f"tts://{voice}", pipeline=pool,
                                  version=__version__, config_sha256=config_sha256, voice=voice), audio)


def build_speech(plan: SpeechPlan, cache: Path | None = None, pool: str = "demo-speech") -> Path:
    """Shard sets `train/`, `heldout/` and (if the plan asks) `unseen-voice/` for `plan`, built
    once into the cache folder `pool/<key>/` (another sentence pool names its own folder; `pool`
    is also each sample's `pipeline`). The synthesis spawns one process per core, which imports
    the caller's main module again: call it from a script only under
    `if __name__ == "__main__":`."""
    target = (cache or cache_root()) / pool / plan.key()
    if (target / "summary.json").is_file():
        return target
    with file_lock(target.with_name(target.name + ".lock")):
        if (target / "summary.json").is_file():
            return target
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        sets: dict[str, list] = {"train": [], "heldout": []}
        first, others = TRAIN_VOICES[0], TRAIN_VOICES[1:]
        jobs: dict[str, list[tuple[str, str, str, int]]] = {}  # voice -> (set, key, text, seed)
        for name in TRAIN_VOICES:
            jobs[name] = [("train", f"tr-{name}-{i:03d}", text, plan.seed + i)
                          for i, text in enumerate(plan.train)
                          if name == first or name == others[i % len(others)]]
            jobs[name] += [("heldout", f"ho-{name}-{i:03d}", text, plan.seed + 1000 + i)
                           for i, text in enumerate(plan.heldout)]
        if plan.unseen_voice:
            sets["unseen-voice"] = []
            jobs[UNSEEN_VOICE] = [("unseen-voice", f"uv-{UNSEEN_VOICE}-{i:03d}", text,
                                   plan.seed + 2000 + i) for i, text in enumerate(plan.heldout)]
        for name, spoken in _speak_in_parallel(jobs).items():
            for (dataset, key, text, _), audio in zip(jobs[name], spoken):
                sets[dataset].append((key, text, name, audio))
        # sentence by sentence, so a validation subset (the first N utterances) hears every voice
        sets["heldout"].sort(key=lambda item: (item[0][-3:], TRAIN_VOICES.index(item[2])))
        summary = {}
        for name, items in sets.items():
            _write_set(partial / name, name.replace("-", ""), items, plan.sha256(), pool)
            summary[name] = {"utterances": len(items),
                             "minutes": round(sum(len(a) for *_, a in items) / 16000 / 60, 2),
                             "voices": sorted({v for _, _, v, _ in items})}
        (partial / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        os.replace(partial, target)
    return target
