"""Our shards to and from lhotse, and how Hugging Face `datasets` and plain `webdataset` read them.

lhotse: each sample becomes a `MonoCut` whose `Recording` holds the FLAC bytes in memory, with
one `SupervisionSegment` carrying text and language and the sample JSON in `custom`; a `CutSet`
(of any sampling rate) writes back into shards through `ShardWriter`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from funfactory import __version__
from funfactory.shards.reader import ShardReader
from funfactory.shards.schema import SAMPLE_RATE, new_meta
from funfactory.shards.writer import ShardWriter


def to_cutset(urls, *, validate: bool = True):
    """A lazy lhotse CutSet over our shards (audio stays encoded until `load_audio`)."""
    from lhotse import CutSet

    return CutSet(_cuts(urls, validate))


def _cuts(urls, validate: bool) -> Iterator:
    for sample in ShardReader(urls, decode=False, validate=validate):
        yield sample_cut(sample)


def sample_cut(sample):
    """One shard sample as a lhotse `MonoCut` (module docstring)."""
    from lhotse import MonoCut, Recording, SupervisionSegment

    meta = sample.meta
    recording = Recording.from_bytes(sample.flac, recording_id=sample.key)
    supervision = SupervisionSegment(
        id=sample.key, recording_id=sample.key, start=0.0, duration=recording.duration,
        channel=0, text=meta["text"], language=meta["language"], custom={"funfactory": meta})
    return MonoCut(id=sample.key, start=0.0, duration=recording.duration, channel=0,
                   recording=recording, supervisions=[supervision])


def from_cutset(cuts: Iterable, out_dir: str | Path, dataset: str, split: str = "train", *,
                task: str = "asr", pipeline: str = "lhotse-import",
                max_count: int = 1000) -> list[Path]:
    """Write a lhotse CutSet into our shards, resampling to 16 kHz mono.

    A cut that came from our shards keeps its original JSON; other cuts get a fresh one from
    their first supervision (text, language) and recording id.
    """
    from funfactory.shards.keys import segment_key, source_id

    with ShardWriter(out_dir, dataset, split, max_count=max_count) as writer:
        for n, cut in enumerate(cuts):
            if cut.sampling_rate != SAMPLE_RATE:
                cut = cut.resample(SAMPLE_RATE)
            audio = cut.load_audio()
            audio = audio.mean(axis=0) if audio.ndim == 2 else audio
            audio = np.asarray(audio, dtype=np.float32)
            sup = cut.supervisions[0] if cut.supervisions else None
            original = (sup.custom or {}).get("funfactory") if sup is not None else None
            if original is not None:
                meta = dict(original)
            else:
                rec_id = cut.recording_id if cut.has_recording else cut.id
                src = source_id(f"lhotse:{rec_id}")
                digest = hashlib.sha1(cut.id.encode("utf-8")).hexdigest()[:8]
                meta = new_meta(
                    key=segment_key(src, n, digest), text=(sup.text or "") if sup else "",
                    language=(sup.language or "") if sup else "", duration=len(audio) / SAMPLE_RATE,
                    task=task if sup is not None and sup.text else "unlabelled",
                    source_id=src, uri=f"lhotse:{rec_id}", offset=float(cut.start),
                    pipeline=pipeline, version=__version__, config_sha256="")
            meta["duration"] = round(len(audio) / SAMPLE_RATE, 4)
            writer.write(meta, audio)
        return writer.shards


def hf_features():
    """Features for `datasets.load_dataset("webdataset", ..., features=hf_features())`.

    The builder would otherwise type `flac` as `datasets.Audio`, whose encoder needs torchcodec
    (not installable beside the CPU torch); raw bytes keep decoding in soundfile's hands, and
    `Json` keeps each sample's JSON whole even where optional fields differ between samples.
    """
    import datasets

    return datasets.Features({"json": datasets.Json(), "flac": datasets.Value("binary"),
                              "__key__": datasets.Value("string"),
                              "__url__": datasets.Value("string")})
