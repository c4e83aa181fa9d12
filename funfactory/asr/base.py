"""The ASR backend interface used by the pseudo-label step (Fun-ASR report section 3.1).

A backend is built cheaply and loads its model in :meth:`AsrBackend.load` (called once per Beam
worker from ``DoFn.setup``). :meth:`AsrBackend.transcribe_batch` takes a list of 16 kHz mono
float32 clips and returns one :class:`Transcript` per clip, in order. With
``word_timestamps=True`` a backend that can align words fills :attr:`Transcript.words`
(faster-whisper and pocketsphinx can; the streaming simulation uses it); the others raise
:class:`WordTimestampsUnsupported`.

``languages`` lists the language codes a backend can transcribe (``None``: any). The pseudo-label
step asks only the backends that cover a segment's language hint.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from funfactory.errors import FunfactoryError

SAMPLE_RATE = 16000


class WordTimestampsUnsupported(FunfactoryError):
    """The backend cannot align words; use faster-whisper or pocketsphinx for word timings."""


@dataclass(frozen=True)
class Word:
    text: str
    start: float  # seconds from the start of the clip
    end: float


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str | None = None
    words: tuple[Word, ...] | None = None
    extras: dict = field(default_factory=dict)  # backend figures: no_speech_prob, avg_logprob...

    def as_label(self) -> dict:
        """The JSON form kept in a sample's ``labels`` (every hypothesis is kept)."""
        out = {"text": self.text, "language": self.language}
        out.update({k: (round(v, 4) if isinstance(v, float) else v)
                    for k, v in self.extras.items()})
        if self.words is not None:
            out["words"] = [[w.text, round(w.start, 3), round(w.end, 3)] for w in self.words]
        return out


class AsrBackend(ABC):
    """One ASR system. Subclasses set ``name`` and ``languages`` and implement ``load`` and
    ``_transcribe``; ``transcribe_batch`` checks inputs and keeps order."""

    name: str = "asr"
    languages: tuple[str, ...] | None = None
    supports_word_timestamps: bool = False
    # Intra-op threads of the loaded model; 0: one (a Beam worker's share). FUNFACTORY_ASR_THREADS
    # overrides either (`cpu_threads`).
    threads: int = 0

    def __init__(self) -> None:
        self._loaded = False

    def load(self) -> AsrBackend:
        if not self._loaded:
            self._load()
            self._loaded = True
        return self

    @abstractmethod
    def _load(self) -> None: ...

    @abstractmethod
    def _transcribe(self, audios: list[np.ndarray], languages: list[str | None],
                    word_timestamps: bool) -> list[Transcript]: ...

    def covers(self, language: str | None) -> bool:
        """Whether this backend can transcribe speech in ``language`` (None: unknown)."""
        if self.languages is None:
            return True
        if not language:
            return len(self.languages) > 1
        return all(part in self.languages for part in language.split("-"))

    def transcribe_batch(self, audios: Sequence[np.ndarray],
                         languages: Sequence[str | None] | None = None,
                         word_timestamps: bool = False) -> list[Transcript]:
        if word_timestamps and not self.supports_word_timestamps:
            raise WordTimestampsUnsupported(
                f"ASR backend {self.name!r} does not give word timestamps; use a faster-whisper or "
                "pocketsphinx backend")
        audios = [np.ascontiguousarray(a, dtype=np.float32).reshape(-1) for a in audios]
        languages = list(languages) if languages is not None else [None] * len(audios)
        if len(languages) != len(audios):
            raise ValueError(f"{len(audios)} clips but {len(languages)} language hints")
        if not audios:
            return []
        self.load()
        out = self._transcribe(audios, languages, word_timestamps)
        if len(out) != len(audios):
            raise FunfactoryError(f"ASR backend {self.name!r} returned {len(out)} transcripts for "
                                  f"{len(audios)} clips")
        return out

    def transcribe_windows(self, windows: Sequence[Sequence[np.ndarray]],
                           languages: Sequence[str | None], gap_seconds: float = 0.0
                           ) -> list[list[Transcript]]:
        """One transcript per clip of each window (consecutive clips of one recording, one
        language hint per window). A backend that decodes fixed windows (Whisper) decodes a
        window's clips together (:mod:`funfactory.asr.windows`); the others transcribe each clip
        alone, so the default is the clips as one batch."""
        if len(languages) != len(windows):
            raise ValueError(f"{len(windows)} windows but {len(languages)} language hints")
        flat = self.transcribe_batch([clip for window in windows for clip in window],
                                     [lang for window, lang in zip(windows, languages)
                                      for _ in window])
        out, at = [], 0
        for window in windows:
            out.append(flat[at:at + len(window)])
            at += len(window)
        return out

    def transcribe(self, audio: np.ndarray, language: str | None = None,
                   word_timestamps: bool = False) -> Transcript:
        return self.transcribe_batch([audio], [language], word_timestamps)[0]


def cpu_threads(default: int = 1) -> int:
    """Intra-op threads per backend (FUNFACTORY_ASR_THREADS, else `default`, 1 unless the caller
    knows better: Beam runs one backend per worker, and workers are the unit of parallelism)."""
    return max(1, int(os.environ.get("FUNFACTORY_ASR_THREADS", str(default))))
