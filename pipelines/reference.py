"""Reference shards: a corpus's known utterances, cut at their known spans, as a shard set.

The embedded corpus (and any corpus with a manifest of timed reference utterances) carries
ground truth. Cutting it into shards gives the evaluator a gold set with known text, and the
demo a first shard set before any model has labelled anything. Audio is read span by span
(never a whole recording) and resampled to 16 kHz mono.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from funfactory import __version__
from funfactory.errors import FunfactoryError
from funfactory.eval.textnorm import normalize_label
from funfactory.shards.audio import read_span
from funfactory.shards.keys import segment_key, source_id
from funfactory.shards.schema import SAMPLE_RATE, new_meta
from funfactory.shards.writer import ShardWriter


@dataclass
class Utterance:
    recording_id: str
    uri: str
    index: int
    start: float
    end: float
    text: str
    language: str
    published_at: str | None


def read_manifest(corpus_dir: str | Path) -> Iterator[Utterance]:
    corpus_dir = Path(corpus_dir)
    manifest = corpus_dir / "manifest.jsonl"
    if not manifest.exists():
        raise FunfactoryError(f"{corpus_dir} has no manifest.jsonl; build one with "
                              "`funfactory synth corpus --out DIR`")
    with manifest.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                for i, utt in enumerate(rec["utterances"]):
                    yield Utterance(rec["id"], rec["uri"], i, float(utt["start"]),
                                    float(utt["end"]), utt["text"],
                                    utt.get("language", rec["language"]), rec.get("published_at"))
            except (KeyError, TypeError, ValueError) as e:
                raise FunfactoryError(f"{manifest} line {line_no}: not a corpus record ({e})")


def write_reference_shards(corpus_dir: str | Path, out_dir: str | Path, dataset: str = "reference",
                           split: str = "test", max_count: int = 200) -> list[Path]:
    """Cut every reference utterance of the corpus into `{dataset}-{split}-*.tar` shards."""
    corpus_dir = Path(corpus_dir)
    with ShardWriter(out_dir, dataset, split, max_count=max_count) as writer:
        for utt in read_manifest(corpus_dir):
            uri = (corpus_dir / utt.uri).resolve().as_uri()
            audio = np.clip(read_span(corpus_dir / utt.uri, utt.start, utt.end), -1.0, 1.0)
            src = source_id(uri)
            meta = new_meta(
                key=segment_key(src, utt.index), text=normalize_label(utt.text, utt.language),
                raw_text=utt.text, language=utt.language, duration=len(audio) / SAMPLE_RATE,
                task="asr", source_id=src, uri=uri, offset=utt.start,
                published_at=utt.published_at, pipeline="reference", version=__version__,
                config_sha256="", labels={"reference": {"text": utt.text}, "chosen": "reference"})
            writer.write(meta, audio)
    return writer.shards
