"""Test audio for the label pipeline tests: TTS speech with known text (hibari-tts, 24 kHz),
written as real files with a JSONL list whose utterances give each sentence's time span, and
planted faults. Cached per process: TTS runs once per sentence."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please send the quarterly report to the finance team before Friday.",
    "We measured the temperature every morning for three weeks.",
    "Our train leaves the station at seven in the evening.",
    "She planted tomatoes and basil in the garden last spring.",
    "The library will be closed on Monday for repairs.",
)
TTS_RATE = 24000


@lru_cache(maxsize=None)
def _engine():
    from hibari.tts import Hibari
    return Hibari(threads=1)


@lru_cache(maxsize=None)
def speech(text: str) -> np.ndarray:
    """24 kHz float32 TTS audio of ``text`` (deterministic: fixed seed)."""
    return np.asarray(_engine()(text, seed=0), dtype=np.float32)


def recording(texts, gap_seconds: float = 1.5, lead_seconds: float = 0.5):
    """(audio at 24 kHz, utterances [(start, end, text)]) of sentences with silence between."""
    parts, utterances, t = [np.zeros(int(lead_seconds * TTS_RATE), np.float32)], [], lead_seconds
    for text in texts:
        wave = speech(text)
        utterances.append((round(t, 4), round(t + len(wave) / TTS_RATE, 4), text))
        parts += [wave, np.zeros(int(gap_seconds * TTS_RATE), np.float32)]
        t += len(wave) / TTS_RATE + gap_seconds
    return np.concatenate(parts), utterances


def write_speech_corpus(folder: Path, groups, extension: str = "wav") -> Path:
    """One file per group of sentences, plus ``manifest.jsonl``; returns the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, texts in enumerate(groups):
        audio, utterances = recording(texts)
        path = folder / f"speech{i:02d}.{extension}"
        sf.write(path, audio, TTS_RATE)
        rows.append({"uri": path.name, "language": "en", "published_at": "2025-06-01",
                     "text": " ".join(texts),
                     "utterances": [{"start": s, "end": e, "text": x} for s, e, x in utterances]})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def write_faults(folder: Path, long_hours: float = 3.0) -> dict[str, Path]:
    """The planted faults of a careless corpus, each a real file; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = {}
    paths["zero_length"] = folder / "zero.wav"
    paths["zero_length"].write_bytes(b"")
    paths["not_audio"] = folder / "notes.wav"
    paths["not_audio"].write_text("these are meeting notes, not audio\n" * 40)
    good = folder / "_tmp.flac"
    sf.write(good, speech(SENTENCES[0]), TTS_RATE)
    data = good.read_bytes()
    good.unlink()
    paths["corrupt"] = folder / "corrupt.flac"
    paths["corrupt"].write_bytes(data[:4] + bytes(rng.integers(0, 256, 2000, dtype=np.uint8))
                                 + data[2004:])
    # 8 kHz stereo speech: resampled to 16 kHz mono and kept
    import soxr
    mono8k = soxr.resample(speech(SENTENCES[3]), TTS_RATE, 8000).astype(np.float32)
    stereo = np.stack([mono8k, 0.8 * mono8k], axis=1)
    paths["stereo_8k"] = folder / "stereo8k.wav"
    sf.write(paths["stereo_8k"], np.concatenate([np.zeros((4000, 2), np.float32), stereo,
                                                 np.zeros((4000, 2), np.float32)]), 8000)
    # pure noise: 8 s of white noise
    paths["noise"] = folder / "noise.wav"
    sf.write(paths["noise"], (0.05 * rng.standard_normal(8 * 16000)).astype(np.float32), 16000)
    # long file: 16-bit digital silence written in 10-minute chunks, one sentence near the end
    paths["long"] = folder / "long.wav"
    rate = 16000
    total = int(long_hours * 3600 * rate)
    sentence = (soxr.resample(speech(SENTENCES[4]), TTS_RATE, rate) * 32767).astype(np.int16)
    before = total - len(sentence) - 10 * rate
    chunk = np.zeros(600 * rate, np.int16)
    with sf.SoundFile(paths["long"], "w", rate, 1, subtype="PCM_16") as f:
        written = 0
        while written < before:
            n = min(len(chunk), before - written)
            f.write(chunk[:n])
            written += n
        f.write(sentence)
        f.write(chunk[:total - before - len(sentence)])
    return paths


def write_hostile_folder(folder: Path, outside: Path) -> dict[str, tuple[Path, str]]:
    """A folder of odd and hostile entries as a careless copy or a stranger leaves them; returns
    name -> (path as listed, where it must end: ``"shards"``, ``"ignored"`` or a rejects reason).
    ``outside`` is a folder beside it that the job is not given."""
    folder.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    entries = {}

    def entry(name, end):
        entries[name] = (folder / name, end)
        return folder / name

    sf.write(entry("speech.wav", "shards"), speech(SENTENCES[1]), TTS_RATE)
    # an extension that does not match the content: libsndfile reads the content
    sf.write(entry("mislabelled.mp3", "shards"), speech(SENTENCES[2]), TTS_RATE, format="FLAC")
    # audio under a name that is not an audio extension is not an input
    sf.write(entry("take2.txt", "ignored"), speech(SENTENCES[2]), TTS_RATE, format="WAV")
    entry("empty.wav", "empty_file").write_bytes(b"")
    entry("minutes.flac", "not_audio").write_text("minutes of the meeting\n" * 20)
    # a WAV cut short in its data chunk (an interrupted copy): libsndfile reads it as shorter
    whole = folder / "_whole.wav"
    sf.write(whole, speech(SENTENCES[3]), TTS_RATE, subtype="PCM_16")
    entry("cut.wav", "decode_error").write_bytes(whole.read_bytes()[:20000])
    whole.unlink()
    album = entry("album.wav", "not_a_file")
    album.mkdir()
    entries["album.wav/inside.flac"] = (album / "inside.flac", "empty_file")
    (album / "inside.flac").write_bytes(b"")
    sf.write(outside / "private.wav", speech(SENTENCES[5]), TTS_RATE)
    entry("outside.wav", "external_link").symlink_to(outside / "private.wav")
    entry("more", "external_link").symlink_to(outside, target_is_directory=True)
    entry("gone.wav", "broken_link").symlink_to(folder / "deleted.wav")
    entry("again.wav", "duplicate_link").symlink_to("speech.wav")
    os.mkfifo(entry("pipe.wav", "not_a_file"))
    sf.write(entry("odd name ü #1.ogg", "no_speech"),
             (0.05 * rng.standard_normal(2 * 16000)).astype(np.float32), 16000)
    return entries
