"""Per-utterance work of the streaming pipeline (section 5.1) and its Beam wiring.

For each labelled utterance: time its words with the aligner, cut chunked prefixes, and write one
`streaming` sample per prefix whose supported text is not empty (the key gets `-s0003` for chunk
3); the last prefix is the whole utterance with the whole label. Prefixes with no supported text
yet (the first chunk, before the first word ends) are counted in the report, not written: the
schema requires text for `streaming` samples, and noise-only samples (section 5.6)
already teach silence.
"""

from __future__ import annotations

import copy

import numpy as np

from funfactory import __version__
from funfactory.pipelines.augment.samples import Derived, Rejected
from funfactory.pipelines.streaming.alignment import WordAligner, align_label
from funfactory.pipelines.streaming.chunking import SAMPLE_RATE, stream_prefixes
from funfactory.pipelines.streaming.config import StreamingConfig
from funfactory.shards.schema import KEY_PATTERN

PIPELINE = "streaming"


class StreamSimulator:
    def __init__(self, config: StreamingConfig, aligner: WordAligner, config_sha256: str = ""):
        self.config = config
        self.aligner = aligner
        self.config_sha256 = config_sha256

    def derive(self, meta: dict, audio: np.ndarray) -> tuple[list[Derived], list[Rejected]]:
        key, label = meta["key"], meta["text"]
        if not label.strip():
            return [], [Rejected(key, "empty_label", "a streaming sample needs a label")]
        if not KEY_PATTERN.match(f"{key}-s0000"):
            return [], [Rejected(key, "key_too_long", "no room for the '-sNNNN' suffix")]
        aligner_name, words = self.aligner.words(audio, meta["language"])
        alignment = align_label(label, words, audio.size / SAMPLE_RATE)
        if alignment.match_rate < self.config.min_match_rate:
            return [], [Rejected(key, "alignment_mismatch",
                                 f"{aligner_name} matched {alignment.matched}/{alignment.scored} "
                                 f"label tokens (< {self.config.min_match_rate}); heard "
                                 f"{' '.join(w.text for w in words)!r}")]
        prefixes = stream_prefixes(label, alignment, audio.size, self.config.chunk_ms)
        out = []
        for prefix in prefixes:
            if not prefix.text:
                continue
            new = copy.deepcopy(meta)
            new.update({
                "key": f"{key}-s{prefix.index:04d}", "text": prefix.text,
                "raw_text": prefix.text if not prefix.final else meta["raw_text"],
                "task": "streaming", "duration": round(prefix.visible_seconds, 4),
            })
            new["stream"] = {
                "parent_key": key, "chunk_ms": self.config.chunk_ms, "chunk_index": prefix.index,
                "num_chunks": len(prefixes), "visible_seconds": round(prefix.visible_seconds, 4),
                "partial_text": prefix.text, "full_text": label, "final": prefix.final,
                "aligner": aligner_name, "aligned_tokens": alignment.matched,
                "label_tokens": alignment.scored,
                "words": [[w.text, round(w.start, 3), round(w.end, 3)] for w in words],
            }
            new["lineage"] = {"pipeline": PIPELINE, "version": __version__,
                              "config_sha256": self.config_sha256,
                              "parent": meta.get("lineage")}
            out.append(Derived(new, audio[:prefix.visible_samples]))
        if not out:
            return [], [Rejected(key, "no_text_prefix",
                                 f"none of {len(prefixes)} prefixes holds a word yet")]
        return out, []


class BuildSimulator:
    """Picklable: builds the simulator (and loads the aligners lazily) on the worker."""

    def __init__(self, config: StreamingConfig, config_sha256: str):
        self.config = config
        self.config_sha256 = config_sha256

    def __call__(self) -> StreamSimulator:
        return StreamSimulator(self.config, WordAligner(self.config.aligners), self.config_sha256)


def stream_row(meta: dict) -> dict:
    stream = meta["stream"]
    return {"key": meta["key"], "parent_key": stream["parent_key"],
            "chunk_index": stream["chunk_index"], "num_chunks": stream["num_chunks"],
            "final": stream["final"], "visible_seconds": stream["visible_seconds"],
            "duration": meta["duration"], "chars": len(meta["text"]),
            "full_chars": len(stream["full_text"])}


def streaming_units_fn(config: StreamingConfig, config_sha256: str):
    from funfactory.pipelines.augment.shardwise import DeriveUnits

    return DeriveUnits("streaming", BuildSimulator(config, config_sha256), stream_row)
