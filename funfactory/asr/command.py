"""A command-line ASR system: any program that reads WAV paths and writes JSON lines.

The program is run as ``argv + [wav1, wav2, ...]`` (a list, never through a shell) with a time
limit. It must print one JSON object per clip on stdout: ``{"path": ..., "text": ...}``, with
optional ``"language"`` and ``"words": [[word, start, end], ...]``. Clips are written as 16 kHz
mono 16-bit WAV files to a private temporary folder, removed afterwards.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import soundfile as sf

from funfactory.errors import FunfactoryError
from funfactory.asr.base import AsrBackend, Transcript, Word


class CommandBackend(AsrBackend):
    def __init__(self, argv: list[str], name: str = "command",
                 languages: tuple[str, ...] | None = None, timeout_s: float = 600.0):
        super().__init__()
        if not argv or not all(isinstance(a, str) for a in argv):
            raise FunfactoryError(f"command ASR backend {name!r}: argv must be a non-empty list "
                                  f"of strings, got {argv!r}")
        self.argv = list(argv)
        self.name = name
        self.languages = languages
        self.timeout_s = timeout_s
        self.supports_word_timestamps = True

    def _load(self) -> None:
        return None

    def _transcribe(self, audios, languages, word_timestamps):
        with tempfile.TemporaryDirectory(prefix="funfactory-asr-") as tmp:
            paths = []
            for i, audio in enumerate(audios):
                path = Path(tmp) / f"clip{i:05d}.wav"
                sf.write(path, audio, 16000, subtype="PCM_16")
                paths.append(str(path))
            try:
                proc = subprocess.run(self.argv + paths, capture_output=True, text=True,
                                      timeout=self.timeout_s, check=False)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise FunfactoryError(f"command ASR backend {self.name!r} ({self.argv[0]}) "
                                      f"failed to run: {e}") from None
            if proc.returncode != 0:
                raise FunfactoryError(
                    f"command ASR backend {self.name!r} exited with {proc.returncode}: "
                    f"{proc.stderr.strip()[-500:]}")
            by_path = {}
            for n, line in enumerate(proc.stdout.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    by_path[str(row["path"])] = row
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise FunfactoryError(
                        f"command ASR backend {self.name!r}: stdout line {n} is not a JSON object "
                        f"with 'path' and 'text': {line[:200]!r}") from None
        out = []
        for path, language in zip(paths, languages):
            row = by_path.get(path)
            if row is None:
                raise FunfactoryError(f"command ASR backend {self.name!r} printed no line for "
                                      f"{Path(path).name}; it must print one JSON line per path")
            words = None
            if word_timestamps and row.get("words") is not None:
                words = tuple(Word(str(w[0]), float(w[1]), float(w[2])) for w in row["words"])
            out.append(Transcript(text=str(row.get("text", "")).strip(),
                                  language=row.get("language") or language, words=words))
        return out
