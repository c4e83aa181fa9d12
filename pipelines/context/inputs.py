"""Inputs of the synthesis pipelines that start from transcribed speech (context, hotword).

A *recording* is one resumable unit: an id, its language, its source fields and its utterances
(``{"text", "start", "end"}`` in seconds) in order. Two kinds:

- the embedded default corpus (`funfactory.synth.corpus`): long recordings with exact utterance
  spans, audio read from the recording file;
- shards (e.g. the label pipeline's output): samples grouped by ``source_id`` through the Parquet
  index, in key order (segment keys number segments in time order); each utterance's audio is its
  sample's FLAC member, and times are positions in the concatenation of those samples.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from funfactory.errors import FunfactoryError
from funfactory.shards.keys import source_id

SAMPLE_RATE = 16000


def corpus_recordings(scale: str = "tiny", seed: int = 0) -> list[dict]:
    from funfactory.synth.corpus import default_corpus
    corpus = default_corpus(scale, seed)
    recordings = []
    for row in corpus.recordings():
        recordings.append({
            "unit": row["id"], "kind": "file", "path": str(corpus.path(row["uri"])),
            "uri": f"corpus://{scale}-seed{seed}/{row['uri']}", "language": row["language"],
            "source_id": source_id(f"corpus://{scale}-seed{seed}/{row['uri']}"),
            "published_at": row.get("published_at"), "duration": row["duration"],
            "utterances": [{"text": u["text"], "start": u["start"], "end": u["end"]}
                           for u in row["utterances"]]})
    return recordings


def shard_recordings(shards: str | Path) -> list[dict]:
    from funfactory.shards.index import read_index
    table = read_index(shards).to_pylist()
    if not table:
        raise FunfactoryError(f"no indexed samples under {shards}; run `funfactory shards verify`")
    folder = Path(shards)
    by_source: dict[str, list[dict]] = defaultdict(list)
    for row in table:
        if row["text"].strip():
            by_source[row["source_id"]].append(row)
    recordings = []
    for source in sorted(by_source):
        rows = sorted(by_source[source], key=lambda r: r["key"])
        cursor, utterances = 0.0, []
        for row in rows:
            utterances.append({"text": row["text"], "start": cursor, "end": cursor + row["duration"],
                               "shard": str(folder / row["shard"]), "offset": row["audio_offset"],
                               "size": row["audio_size"]})
            cursor += row["duration"]
        languages = {r["language"] for r in rows}
        recordings.append({
            "unit": source, "kind": "shard", "uri": f"shards://{rows[0]['shard']}",
            "language": languages.pop() if len(languages) == 1 else "zh-en",
            "source_id": source, "published_at": rows[0]["published_at"], "duration": cursor,
            "utterances": utterances})
    return recordings


class RecordingAudio:
    """Audio of one recording at 16 kHz, the last one kept in memory (units arrive one by one)."""

    def __init__(self):
        self._unit: str | None = None
        self._audio: np.ndarray | None = None

    def _load(self, recording: dict) -> np.ndarray:
        if recording["kind"] == "file":
            from funfactory.pipelines.augment.noise_corpus import load_audio_16k
            return load_audio_16k(recording["path"])
        from funfactory.shards.audio import decode_flac
        from funfactory.shards.reader import read_member
        pieces = [decode_flac(read_member(u["shard"], u["offset"], u["size"]))[0]
                  for u in recording["utterances"]]
        return np.concatenate(pieces).astype(np.float32)

    def cut(self, recording: dict, start: float, end: float) -> np.ndarray:
        if self._unit != recording["unit"]:
            self._audio, self._unit = self._load(recording), recording["unit"]
        first = max(0, int(round(start * SAMPLE_RATE)))
        last = min(self._audio.size, int(round(end * SAMPLE_RATE)))
        return np.ascontiguousarray(self._audio[first:last], dtype=np.float32)
