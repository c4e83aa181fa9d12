"""The label-confidence calibration set: known-text TTS speech in real noise, with every ASR
system's hypothesis (Fun-ASR report sections 3.1 and 5.2).

The confidence model of :mod:`funfactory.pipelines.label.confidence` maps evidence that needs no
reference (agreement, each system's own scores, rate and repetition) to an estimated error rate.
Its map and the keep threshold are fitted here and nowhere else:

- sentences from the shipped pools (``synth/texts``: English, Mandarin, code-switched zh-en),
  each spoken by one of several voices (:data:`VOICES`); one voice per language is held out
  (:data:`HELD_OUT`) so the fit can be checked on a voice it never saw;
- each utterance is levelled and mixed with a real noise recording (Debian-packaged ambient,
  crowd and traffic clips, :func:`funfactory.synth.noise.build_real_noise`) at every SNR of
  :data:`SNRS_DB` (``None`` is clean), with the shared mixing rule
  (:func:`funfactory.pipelines.augment.mixing.mix_at_snr`);
- every system that covers the language transcribes every clip (the label job's default
  backends), and the hypotheses are kept with the reference text.

The plan is drawn in rounds (:data:`ROUNDS`): each round gives every voice of a language more
sentences that no earlier round used, from its own seeded draw, so a later round adds clips and
leaves the earlier ones as they were. ``calibration_set()`` caches each utterance's clips (every
condition, every system's hypothesis) in ``cache_root()/label-calibration/clips/<hash>.json``,
the hash over everything that makes them (utterance, conditions, level, seed, backends), and
builds only the missing ones, a few utterances at a time (a file lock guards concurrent first
calls; each file is written to a temporary name and renamed, so a killed build keeps what it
finished). Same plan, same records. ``python -m funfactory.pipelines.label.calibration_set``
builds it and prints its progress. Size: 456 clips (288 English with three systems: six voices,
twelve sentences each, four conditions; 168 Mandarin and zh-en with Whisper base: seven
voice-language pairs, six sentences each). The first round (228 clips) took about 17 CPU
minutes; the second (228 clips) 24 wall minutes on two cores shared with model training.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from funfactory.asr.registry import BackendSpec, build_backend, default_specs
from funfactory.cache import cache_root, file_lock
from funfactory.pipelines.augment.mixing import mix_at_snr, noise_segment, sample_rng
from funfactory.synth.corpus import load_sentences, trim_silence
from funfactory.synth.noise import build_real_noise
from funfactory.synth.tts import get_voice, resample_to_16k

VERSION = "3"
SNRS_DB: tuple[float | None, ...] = (None, 10.0, 5.0, 0.0)
VOICES = {"en": ("hibari-en", "espeak-en", "kokoro-alpha", "kokoro-tebukuro", "kokoro-kumo",
                  "piper-joe-en"),
          "zh": ("kokoro-alpha", "espeak-cmn", "espeak-cmn-f", "kokoro-nezumi"),
          "zh-en": ("kokoro-alpha", "espeak-cmn", "kokoro-nezumi")}
HELD_OUT = {"en": "piper-joe-en", "zh": "kokoro-nezumi", "zh-en": "kokoro-nezumi"}
# sentences per voice in each round; the second round doubles every language (English: 36 -> 72
# segments per condition, where the keep rule's bars are measured)
ROUNDS = ({"en": 6, "zh": 3, "zh-en": 3}, {"en": 6, "zh": 3, "zh-en": 3})
UTTERANCES_PER_BUILD = 12
SPEECH_RMS_DBFS = -23.0
SEED = 13


@dataclass(frozen=True)
class Utterance:
    key: str
    language: str
    voice: str
    text: str
    tts_seed: int


def plan_utterances(seed: int = SEED) -> list[Utterance]:
    """Which sentence each voice speaks: per round (:data:`ROUNDS`), a seeded draw without
    replacement per language from the sentences earlier rounds left."""
    plan: list[Utterance] = []
    for number, counts in enumerate(ROUNDS):
        rng = np.random.default_rng([seed, 3 + number])
        for language, per_voice in counts.items():
            used = {u.text for u in plan if u.language == language}
            first = sum(r.get(language, 0) for r in ROUNDS[:number])
            pool = list(rng.permutation([s for s in load_sentences(language) if s not in used]))
            for voice in VOICES[language]:
                for n in range(first, first + per_voice):
                    plan.append(Utterance(
                        key=f"{language.replace('-', '')}-{voice}-{n}", language=language,
                        voice=voice, text=str(pool.pop()), tts_seed=int(rng.integers(2 ** 31))))
    return plan


def _speech(utterance: Utterance) -> np.ndarray:
    voice = get_voice(utterance.voice)
    audio = resample_to_16k(voice.synthesize(utterance.text, seed=utterance.tts_seed),
                            voice.sample_rate)
    audio = trim_silence(audio, 16000)
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) or 1.0
    lead = np.zeros(int(0.3 * 16000), np.float32)
    return np.concatenate([lead, audio * np.float32(10 ** (SPEECH_RMS_DBFS / 20) / rms), lead])


def _noises(root: Path) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Real noise recordings by category (ambient, crowd, traffic): a clip draws its category
    first, so the 18 crowd clips do not drown out the city and traffic ones."""
    by_category: dict[str, list[tuple[str, np.ndarray]]] = {}
    for r in sorted(build_real_noise(root), key=lambda r: r["id"]):
        by_category.setdefault(r["category"], []).append(
            (r["id"], sf.read(root / r["uri"], dtype="float32")[0]))
    return dict(sorted(by_category.items()))


def condition_name(snr_db: float | None) -> str:
    return "clean" if snr_db is None else f"{snr_db:g}dB"


def _mixtures(utterance: Utterance, noises: dict[str, list[tuple[str, np.ndarray]]], seed: int):
    speech = _speech(utterance)
    for snr_db in SNRS_DB:
        if snr_db is None:
            yield snr_db, None, speech
            continue
        rng = sample_rng(seed, utterance.key, condition_name(snr_db))
        category = list(noises)[int(rng.integers(len(noises)))]
        noise_id, noise = noises[category][int(rng.integers(len(noises[category])))]
        segment = noise_segment(noise, len(speech), int(rng.integers(len(noise))))
        yield snr_db, noise_id, mix_at_snr(speech, segment, snr_db).audio


def _label(clips: list[dict], audios: list[np.ndarray], specs: list[BackendSpec],
           batch_size: int = 8) -> None:
    for spec in specs:
        backend = build_backend(spec).load()
        chosen = [i for i, c in enumerate(clips) if backend.covers(c["language"])]
        for start in range(0, len(chosen), batch_size):
            batch = chosen[start:start + batch_size]
            transcripts = backend.transcribe_batch([audios[i] for i in batch],
                                                   [clips[i]["language"] for i in batch])
            for i, transcript in zip(batch, transcripts):
                clips[i]["labels"][backend.name] = transcript.as_label()


def build(utterances: list[Utterance], seed: int = SEED, specs: list[BackendSpec] | None = None,
          echo=lambda *_: None) -> dict[str, list[dict]]:
    """Synthesize, mix and label the clips of ``utterances`` (module docstring): each
    utterance's records, one per condition of :data:`SNRS_DB`."""
    specs = specs or default_specs()
    noise_root = cache_root() / "label-calibration" / "noise"
    noises = _noises(noise_root)
    clips, audios = [], []
    for utterance in utterances:
        for snr_db, noise_id, audio in _mixtures(utterance, noises, seed):
            clips.append({"key": f"{utterance.key}-{condition_name(snr_db)}",
                          "language": utterance.language, "voice": utterance.voice,
                          "held_out": HELD_OUT[utterance.language] == utterance.voice,
                          "snr_db": snr_db, "noise_id": noise_id, "reference": utterance.text,
                          "duration": round(len(audio) / 16000, 3), "labels": {}})
            audios.append(audio)
        echo(f"[calibration] synthesized {utterance.key}")
    echo(f"[calibration] labelling {len(clips)} clips")
    _label(clips, audios, specs)
    n = len(SNRS_DB)
    return {u.key: clips[i * n:(i + 1) * n] for i, u in enumerate(utterances)}


def plan_sha256(seed: int = SEED, specs: list[BackendSpec] | None = None) -> str:
    plan = {"version": VERSION, "snrs": SNRS_DB, "level": SPEECH_RMS_DBFS,
            "utterances": [asdict(u) for u in plan_utterances(seed)],
            "backends": [asdict(s) for s in (specs or default_specs())]}
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()


def utterance_sha256(utterance: Utterance, seed: int, specs: list[BackendSpec]) -> str:
    """What makes one utterance's cached clips: the utterance, the conditions, the level, the
    seed of the noise draws and the backends."""
    made_of = {"utterance": asdict(utterance), "snrs": SNRS_DB, "level": SPEECH_RMS_DBFS,
               "seed": seed, "backends": [asdict(s) for s in specs]}
    return hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()


def calibration_set(seed: int = SEED, specs: list[BackendSpec] | None = None,
                    echo=lambda *_: None) -> list[dict]:
    """The labelled calibration set, each utterance built once into the cache (module
    docstring)."""
    specs = specs or default_specs()
    folder = cache_root() / "label-calibration" / "clips"
    plan = plan_utterances(seed)
    paths = {u.key: folder / f"{utterance_sha256(u, seed, specs)[:16]}.json" for u in plan}
    if not all(path.is_file() for path in paths.values()):
        folder.mkdir(parents=True, exist_ok=True)
        with file_lock(folder / ".lock"):
            missing = [u for u in plan if not paths[u.key].is_file()]
            for start in range(0, len(missing), UTTERANCES_PER_BUILD):
                built = build(missing[start:start + UTTERANCES_PER_BUILD], seed, specs, echo)
                for key, records in built.items():
                    tmp = paths[key].with_name(f".{paths[key].name}.tmp")
                    tmp.write_text(json.dumps(records, ensure_ascii=False, sort_keys=True),
                                   encoding="utf-8")
                    tmp.replace(paths[key])
    return [r for u in plan for r in json.loads(paths[u.key].read_text(encoding="utf-8"))]


if __name__ == "__main__":
    records = calibration_set(echo=print)
    print(f"{len(records)} clips")
