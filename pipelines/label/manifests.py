"""Other toolkits' data sets as label-job sources (Fun-ASR report section 3.1, ingest): Kaldi data
directories, NeMo manifests of audio files and Fun-ASR fine-tuning JSONL.

Each utterance becomes one :class:`~funfactory.pipelines.label.ingest.Source`: its audio file, its
offset and duration in that file, its language, and its transcript both as ``reference`` and as
one timed utterance, so every VAD segment of it carries the human text (see
:mod:`funfactory.pipelines.label.reference_check` for what the job does with it). The formats are
read by :mod:`funfactory.shards.toolkits`, the same readers ``funfactory shards from-*`` uses.
A tarred NeMo manifest holds its audio in tars, which the label job does not stream: import it
with ``funfactory shards from-nemo`` instead. Audio that is not a local file (an ``http`` path in
a Fun-ASR record) becomes a source that ingest rejects as ``unsupported_uri``.
"""

from __future__ import annotations

import json
from pathlib import Path

import soundfile as sf

from funfactory.errors import FunfactoryError
from funfactory.shards.keys import source_id
from funfactory.shards.toolkits import funasr, kaldi, nemo
from funfactory.shards.toolkits.common import sample_language

FORMATS = ("kaldi", "nemo", "funasr")


def detect_format(location: Path) -> str | None:
    """``kaldi`` for a folder with ``wav.scp``; ``funasr`` or ``nemo`` for a JSON-lines file whose
    first record has ``messages`` or ``audio_filepath``; otherwise None."""
    if location.is_dir():
        return "kaldi" if (location / "wav.scp").is_file() else None
    if not location.name.endswith((".json", ".jsonl")) or not location.is_file():
        return None
    try:
        with open(location, encoding="utf-8") as f:
            first = json.loads(next((line for line in f if line.strip()), "{}"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(first, dict) and "messages" in first:
        return "funasr"
    if isinstance(first, dict) and "audio_filepath" in first:
        return "nemo"
    return None


def manifest_sources(location: Path, fmt: str, cfg) -> list:
    """The sources of a Kaldi directory, NeMo manifest or Fun-ASR JSONL (module docstring)."""
    from funfactory.pipelines.label.ingest import Source, _file_source

    if fmt == "nemo" and nemo.is_tarred(location):
        raise FunfactoryError(f"{location} is a tarred NeMo manifest (audio inside tars): import "
                              "it with `funfactory shards from-nemo` and label those shards, or "
                              "point at a manifest of audio files")
    reader = {"kaldi": kaldi.read, "nemo": nemo.read, "funasr": funasr.read}[fmt]
    sources = []
    for utt in reader(location):
        language = sample_language(utt.language)
        if utt.path is None:
            sources.append(Source(id=source_id(utt.uri), uri=utt.uri, path="",
                                  language=language or cfg.language))
            continue
        path = Path(utt.path)
        transcript = utt.text.strip() or None  # none: the segments are pseudo-labelled as usual
        end = utt.offset + utt.duration if utt.duration is not None else _length(path)
        timed = ((utt.offset, end, transcript),) if transcript and end is not None else ()
        sources.append(_file_source(path, cfg, unit_suffix=f"#{utt.id}", language=language,
                                    offset=utt.offset, duration=utt.duration,
                                    reference=transcript, utterances=timed))
    return sources


def _length(path: Path) -> float | None:
    try:
        return sf.info(str(path)).duration
    except (sf.LibsndfileError, RuntimeError):
        return None  # ingest rejects the file with its reason
