"""Kaldi data directories: ``wav.scp``, ``text``, ``segments``, ``utt2spk``, ``spk2utt``,
``utt2dur``, ``utt2lang``, ``reco2dur`` (https://kaldi-asr.org/doc/data_prep.html).

Export: each sample becomes one recording, ``wav/KEY.wav`` (16-bit PCM, the shard's samples
unchanged), and one utterance spanning it (``segments``: ``KEY KEY 0 DURATION``, the duration
exact to the sample). The speaker is the sample's source id when the key starts with it (our
keys do), else the key itself, so utterance ids sort with their speaker as Kaldi requires. Files
are sorted in the C locale (``sort``, streaming). Samples without text (noise-only) are skipped:
a Kaldi ``text`` line needs a transcript.

Import: ``wav.scp`` entries that are file paths (absolute or relative to the directory); piped
commands (``... |``) are refused with the fix. Without ``segments`` each recording is one
utterance. ``text``, ``utt2spk`` and ``utt2lang`` are optional.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from funfactory.errors import FunfactoryError
from funfactory.shards.toolkits.common import (Exporter, ExternalUtterance, Skip, flac_frames,
                                               int16_wav, require_file)

FILES = ("wav.scp", "text", "segments", "utt2spk", "utt2dur", "utt2lang", "reco2dur")


def _seconds(frames: int, rate: int) -> str:
    return f"{frames / rate:.7f}".rstrip("0").rstrip(".")


class KaldiExporter(Exporter):
    def __init__(self, out_dir: Path):
        super().__init__(out_dir)
        (self.out / "wav").mkdir(parents=True, exist_ok=True)
        self.handles = {name: open(self.out / name, "w", encoding="utf-8") for name in FILES}

    def add(self, sample) -> None:
        meta = sample.meta
        text = " ".join(meta["text"].split())
        if not text:
            raise Skip("empty_text", f"task {meta['task']}: a Kaldi text line needs a transcript")
        key = sample.key
        duration = _seconds(*flac_frames(sample))
        wav = (self.out / "wav" / f"{key}.wav").resolve()
        wav.write_bytes(int16_wav(sample.flac))
        source = meta["source"]["id"]
        speaker = source if key.startswith(source + "-") else key
        lines = {"wav.scp": f"{key} {wav}", "text": f"{key} {text}",
                 "segments": f"{key} {key} 0 {duration}", "utt2spk": f"{key} {speaker}",
                 "utt2dur": f"{key} {duration}", "utt2lang": f"{key} {meta['language'] or 'unk'}",
                 "reco2dur": f"{key} {duration}"}
        for name, line in lines.items():
            self.handles[name].write(line + "\n")

    def close(self) -> list[Path]:
        for handle in self.handles.values():
            handle.close()
        env = {**os.environ, "LC_ALL": "C"}
        for name in FILES:
            path = self.out / name
            subprocess.run(["sort", "-o", str(path), str(path)], check=True, env=env)
        by_speaker = subprocess.Popen(["sort", "-k2,2", "-k1,1", str(self.out / "utt2spk")],
                                      stdout=subprocess.PIPE, env=env, text=True,
                                      encoding="utf-8")
        with open(self.out / "spk2utt", "w", encoding="utf-8") as spk2utt:
            speaker, utterances = None, []
            for line in by_speaker.stdout:
                utt, spk = line.split()
                if spk != speaker and speaker is not None:
                    spk2utt.write(f"{speaker} {' '.join(utterances)}\n")
                    utterances = []
                speaker = spk
                utterances.append(utt)
            if speaker is not None:
                spk2utt.write(f"{speaker} {' '.join(utterances)}\n")
        if by_speaker.wait() != 0:
            raise FunfactoryError(f"sorting {self.out / 'utt2spk'} failed")
        return [self.out / name for name in (*FILES, "spk2utt")]


def _table(path: Path) -> dict[str, str]:
    """A Kaldi 'id value' file as a dict ({} when the file is absent)."""
    if not path.is_file():
        return {}
    table = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split(maxsplit=1)
            if not parts:
                continue
            table[parts[0]] = parts[1] if len(parts) > 1 else ""
    return table


def read(data_dir: str | Path) -> Iterator[ExternalUtterance]:
    """The utterances of a Kaldi data directory (module docstring)."""
    data_dir = Path(data_dir)
    wav_scp = require_file(data_dir / "wav.scp", "Kaldi wav.scp",
                           "point at a Kaldi data directory (wav.scp, text, ...)")
    recordings = {}
    for reco, value in _table(wav_scp).items():
        if value.rstrip().endswith("|") or value.startswith("-"):
            raise FunfactoryError(
                f"{wav_scp}: recording {reco} is a piped command ({value[:80]!r}); write the audio "
                "to files first (e.g. Kaldi's wav-copy, or sox) and list their paths")
        path = Path(value)
        recordings[reco] = path if path.is_absolute() else data_dir / path
    texts = _table(data_dir / "text")
    speakers = _table(data_dir / "utt2spk")
    languages = _table(data_dir / "utt2lang")
    segments_file = data_dir / "segments"
    if segments_file.is_file():
        spans = []
        with open(segments_file, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 4:
                    raise FunfactoryError(f"{segments_file}:{n}: expected 'utt reco start end', "
                                          f"got {line.strip()!r}")
                utt, reco, start, end = parts
                if reco not in recordings:
                    raise FunfactoryError(f"{segments_file}:{n}: recording {reco} is not in "
                                          f"{wav_scp}")
                spans.append((utt, reco, float(start), float(end)))
    else:
        spans = [(reco, reco, 0.0, None) for reco in recordings]
    for utt, reco, start, end in spans:
        path = recordings[reco]
        yield ExternalUtterance(
            id=utt, text=texts.get(utt, ""), uri=f"{path.resolve().as_uri()}#{utt}",
            path=str(path), offset=start, duration=None if end is None or end < 0 else end - start,
            language=_known(languages.get(utt, "")), speaker=speakers.get(utt, ""))


def _known(language: str) -> str:
    return "" if language == "unk" else language
