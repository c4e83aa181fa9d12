"""Noise augmentation throughput (Fun-ASR sections 5.2 and 5.6).

On shards of real TTS speech (5 s clips) written here:

- offline augmentation per core: decode + noisy copy (SNR mix, 16-bit FLAC encode) and the same
  with 10 % noise-only samples (zero padding, VAD check), against decoding the same clips alone;
- the whole Beam job (DirectRunner, one worker: one pipeline, each input shard's part streamed
  and committed by the worker, incremental packing into shards, rejects table, run report with
  its duration histogram) end to end on 400 clips (8 input shards, 33 minutes of audio), wall
  time from the call to its return: building the pipeline, the runner, the worker's setup (noise
  corpus, VAD model), the work, packing and reports. Against the same work done in-process (build
  the augmenter, read, augment with noise-only samples, write shards and their index with
  `ShardWriter`). Each side's fastest of three interleaved runs, each job into a new folder. The noise comes from the machine's cache of decoded noise
  (`noise_corpus.cached_audio_16k`), which the anchor's augmenter filled; a machine's first ever
  job also decodes the noise corpus (the Debian train noise, 303 s of it: 0.27 s of CPU). The job
  runs after a 4-clip and a 100-clip job in the same process, so Beam's imports are paid before.
  Its marginal rate (the 100-clip job's time subtracted) is printed beside it: Beam's fixed cost
  per job (about 0.5 s here) is a third of a 100-clip job but not of a corpus;
- the training loader's clips/s with online noise on 30 % of samples against the loader with it
  off (target: at most 25 % slower, ratio >= 0.75).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from bench.common import best_of, row, speech_clips
from funfactory.shards.keys import segment_key
from funfactory.shards.reader import ShardReader
from funfactory.shards.schema import new_meta
from funfactory.shards.writer import ShardWriter

N_CLIPS = 400
N_PIPELINE = 400


def _write(folder: Path, clips) -> None:
    with ShardWriter(folder, "bench", "train", max_count=50) as writer:
        for i, audio in enumerate(clips):
            writer.write(new_meta(key=segment_key("srcbench", i), text="bench clip",
                                  language="en", duration=len(audio) / 16000,
                                  source_id="srcbench", uri="file:///bench.wav",
                                  pipeline="bench", version="0", config_sha256=""), audio)


def _decode(folder: Path) -> int:
    return sum(1 for _ in ShardReader(folder))


def _augment(folder: Path, augmenter) -> int:
    from funfactory.shards.audio import encode_flac

    n = 0
    for sample in ShardReader(folder):
        derived, _ = augmenter.derive(sample.meta, sample.audio)
        for item in derived:
            encode_flac(item.audio)
        n += 1
    return n


def _in_process_job(inputs: Path, out: Path, config) -> int:
    from funfactory.pipelines.augment.transforms import BuildAugmenter

    augmenter = BuildAugmenter(config, "")()
    n = 0
    with ShardWriter(out, "augmented", "train", max_count=1000) as writer:
        for sample in ShardReader(inputs):
            derived, _ = augmenter.derive(sample.meta, sample.audio)
            for item in derived:
                writer.write(item.meta, item.audio)
            n += 1
    return n


def _loader_pass(folder: Path, augmenter, fraction: float) -> int:
    from funfactory.training.config import LoaderConfig, StreamConfig
    from funfactory.training.loader import StreamingLoader

    config = LoaderConfig(streams=[StreamConfig(shards=[str(folder)])], batch_size=8,
                          shuffle_buffer=0)
    config.augment.enabled, config.augment.fraction = augmenter is not None, fraction
    loader = StreamingLoader(config, augmenter=augmenter)
    return sum(len(batch["keys"]) for batch in loader)


def main() -> list[dict]:
    import torch

    from funfactory.pipelines.augment.config import AugmentConfig
    from funfactory.pipelines.augment.noise_corpus import NoiseCorpus
    from funfactory.pipelines.augment.pipeline import run_augment
    from funfactory.pipelines.augment.transforms import BuildAugmenter
    from funfactory.pipelines.common.runner import beam_options
    from funfactory.training.online_augment import OnlineNoiseAugmenter

    torch.set_num_threads(1)
    clips = speech_clips(N_CLIPS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shards = tmp / "speech"
        _write(shards, clips)
        mix_only = AugmentConfig()
        mix_only.noise_only.share = 0.0
        with_negatives = AugmentConfig()
        mixer = BuildAugmenter(mix_only, "")()
        negatives = BuildAugmenter(with_negatives, "")()
        t_decode = t_mix = t_neg = float("inf")
        for _ in range(3):  # interleaved: a busy machine slows each alike
            t_decode = min(t_decode, best_of(lambda: _decode(shards), repeats=1))
            t_mix = min(t_mix, best_of(lambda: _augment(shards, mixer), repeats=1))
            t_neg = min(t_neg, best_of(lambda: _augment(shards, negatives), repeats=1))
        rows.append(row("augment", "decode + noisy copy + encode clips/s (1 core)",
                        N_CLIPS / t_mix, "decode only clips/s", N_CLIPS / t_decode, "clips/s"))
        rows.append(row("augment", "... + 10% noise-only (VAD) clips/s (1 core)",
                        N_CLIPS / t_neg, "decode only clips/s", N_CLIPS / t_decode, "clips/s"))

        options = beam_options(direct_num_workers=1)
        job_seconds, loop_seconds = {}, {}
        for n in (4, N_PIPELINE // 4, N_PIPELINE):  # the first run pays Beam's imports
            inputs = tmp / f"in{n}"
            _write(inputs, clips[:n])
            job_seconds[n] = loop_seconds[n] = float("inf")
            for r in range(3):  # interleaved, each into a fresh folder (no resume)
                job_seconds[n] = min(job_seconds[n], best_of(
                    lambda: run_augment(inputs, tmp / f"job{n}-{r}", with_negatives, options,
                                        report=False, echo=lambda _: None), repeats=1))
                loop_seconds[n] = min(loop_seconds[n], best_of(
                    lambda: _in_process_job(inputs, tmp / f"loop{n}-{r}", with_negatives),
                    repeats=1))
        extra = N_PIPELINE - N_PIPELINE // 4
        marginal = extra / max(job_seconds[N_PIPELINE] - job_seconds[N_PIPELINE // 4], 1e-9)
        loop_marginal = extra / max(loop_seconds[N_PIPELINE] - loop_seconds[N_PIPELINE // 4],
                                    1e-9)
        anchor = "same work in-process clips/s"
        rows.append(row("augment", f"Beam job end to end, {N_PIPELINE} clips, clips/s",
                        N_PIPELINE / job_seconds[N_PIPELINE], anchor,
                        N_PIPELINE / loop_seconds[N_PIPELINE], "clips/s"))
        rows.append(row("augment", "Beam job marginal clips/s (fixed start-up removed)",
                        marginal, "same work in-process, marginal clips/s", loop_marginal,
                        "clips/s"))

        manifest = tmp / "noise.jsonl"
        corpus = NoiseCorpus.from_sources(["debian"])
        manifest.write_text("".join(json.dumps(r) + "\n" for r in corpus.manifest_rows()))
        online = OnlineNoiseAugmenter.from_options({"noise_manifest": str(manifest)})
        t_off = t_on = float("inf")
        for _ in range(3):
            t_off = min(t_off, best_of(lambda: _loader_pass(shards, None, 0.0), repeats=1))
            t_on = min(t_on, best_of(lambda: _loader_pass(shards, online, 0.3), repeats=1))
        rows.append(row("augment", "loader clips/s, online noise on 30% (1 core)",
                        N_CLIPS / t_on, "loader clips/s, online noise off", N_CLIPS / t_off,
                        "clips/s"))
    return rows


if __name__ == "__main__":
    main()
