"""Our shards to and from the data formats other ASR toolkits train on.

| format | export writes | import reads |
| --- | --- | --- |
| ``funasr`` | Fun-ASR-nano's fine-tuning ChatML JSONL plus one WAV per sample | that JSONL |
| ``nemo`` | NeMo's tarred audio dataset: ``audio_{i}.tar``, ``tarred_audio_manifest.json``, ``sharded_manifests/``, ``metadata.yaml`` | a NeMo manifest, tarred or of audio files |
| ``lhotse-shar`` | lhotse Shar (cuts, recordings as FLAC in Shar tars) with lhotse's own writer | a Shar folder |
| ``kaldi`` | a Kaldi data directory (``wav.scp``, ``text``, ``segments``, ``utt2spk``, ``spk2utt``, ``utt2dur``, ``utt2lang``, ``reco2dur``) plus one WAV per sample | a Kaldi data directory |

Exports stream: one sample at a time from :class:`funfactory.shards.reader.ShardReader`, with
progress and an :class:`~funfactory.shards.toolkits.common.ExportReport` (counts, hours, what was
skipped and why). Every export is lossless: audio stays on the 16-bit grid of the shards (FLAC
bytes copied, or the same samples as 16-bit WAV). The field mappings and their sources are in
docs/trainer.md, "Train with another toolkit".
"""

from __future__ import annotations

FORMATS = ("funasr", "nemo", "lhotse-shar", "kaldi")


def exporter_class(fmt: str):
    """The exporter of format `fmt` (one of :data:`FORMATS`)."""
    from funfactory.errors import FunfactoryError

    if fmt == "funasr":
        from funfactory.shards.toolkits.funasr import FunAsrExporter as cls
    elif fmt == "nemo":
        from funfactory.shards.toolkits.nemo import NemoExporter as cls
    elif fmt == "lhotse-shar":
        from funfactory.shards.toolkits.shar import SharExporter as cls
    elif fmt == "kaldi":
        from funfactory.shards.toolkits.kaldi import KaldiExporter as cls
    else:
        raise FunfactoryError(f"export format {fmt!r}: use one of {', '.join(FORMATS)}")
    return cls
