"""Label job throughput against a hand-written loop (Fun-ASR report section 3.1).

The anchor is what a data engineer writes first: for each file, decode it, resample it to 16 kHz,
and transcribe it whole with each of the three systems the label job uses (whisper-base,
whisper-tiny-en, pocketsphinx). The loop runs in the same process, with the models loaded before
the clock starts. The label job (ingest, VAD, the same three systems batched, vote, ITN, filters,
parts, shards, index and report) runs on the DirectRunner, with one worker, and, on the long
recordings, also with two worker threads (`--direct_num_workers 2 --direct_running_mode
multi_threading`, the models shared by the threads). Its models are loaded by a warm-up job
first, so both sides are timed warm, on the same files, in wall seconds. Two inputs:

- many short files: one sentence each, with short leading and trailing silence;
- long recordings with pauses: eight sentences each, with 4 s of silence between them.

Targets: at least 1.0x the loop on the short files and at least 1.5x on the long recordings.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.common import row
from bench.bench_label import SENTENCES

SHORT_FILES = 16
LONG_FILES = 4


def _write(folder: Path, groups, gap: float) -> Path:
    from tests.label_audio import TTS_RATE, recording
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, texts in enumerate(groups):
        audio, _ = recording(texts, gap_seconds=gap, lead_seconds=0.3)
        path = folder / f"rec{i:03d}.wav"
        sf.write(path, audio, TTS_RATE)
        rows.append({"uri": path.name, "language": "en"})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def _hand_loop(manifest: Path, backends) -> float:
    import soxr
    started = time.perf_counter()
    for line in manifest.read_text().splitlines():
        audio, rate = sf.read(manifest.parent / json.loads(line)["uri"], dtype="float32")
        audio = soxr.resample(audio, rate, 16000).astype(np.float32)
        for backend in backends:
            backend.transcribe_batch([audio], ["en"])
    return time.perf_counter() - started


def _job(cfg, manifest: Path, out: Path, workers: int = 1) -> tuple[float, float]:
    from funfactory.pipelines.common.runner import beam_options
    from funfactory.pipelines.label.pipeline import run_label
    options = beam_options(direct_num_workers=workers, direct_running_mode="multi_threading"
                           if workers > 1 else "in_memory")
    started = time.perf_counter()
    report = run_label(cfg, manifest, out, options=options, echo=lambda *_: None)
    return time.perf_counter() - started, report.hours_in * 3600


def main() -> list[dict]:
    import torch

    from funfactory.asr.registry import build_backend
    from funfactory.config import load_config
    from funfactory.pipelines.label.config import LabelConfig

    torch.set_num_threads(1)
    cfg = load_config(LabelConfig, None, ["ingest.language=en"])
    backends = [build_backend(spec).load() for spec in cfg.asr.backends]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-label-tp-") as tmp:
        tmp = Path(tmp)
        warm = _write(tmp / "warm", [SENTENCES[:1]], 0.5)
        _job(cfg, warm, tmp / "warm-out")
        short = _write(tmp / "short", [[SENTENCES[i % len(SENTENCES)]]
                                       for i in range(SHORT_FILES)], 0.3)
        long = _write(tmp / "long", [[SENTENCES[(8 * i + j) % len(SENTENCES)] for j in range(8)]
                                   for i in range(LONG_FILES)],
                      4.0)
        for name, manifest, workers in (("many short files", short, 1),
                                        ("long recordings, pauses", long, 1),
                                        ("long recordings, pauses", long, 2)):
            loop = _hand_loop(manifest, backends)
            job, seconds = _job(cfg, manifest, tmp / f"out-{len(rows)}", workers)
            print(f"label throughput, {name}, {workers} worker(s): {seconds:.0f} s of audio; "
                  f"job {job:.1f} s, hand loop {loop:.1f} s")
            rows.append(row("label_job", f"x real time, {name}, {workers} worker thread(s)",
                            seconds / job, "hand loop over the 3 systems (1 thread)",
                            seconds / loop, "x"))
    return rows


if __name__ == "__main__":
    main()
