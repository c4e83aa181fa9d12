"""The labelling pipeline (Fun-ASR section 3.1): throughput, VAD speed and label quality, in one run.

- Whole pipeline (ingest, VAD, three ASR systems, vote, ITN, filters, shards, report) on the
  DirectRunner, one worker: audio-hours per core-hour (process CPU time), against the model
  inference alone (VAD model + ASR calls, measured inside the same run); the share of time
  outside model inference (target: under 10 %).
- VAD: our streamed ingest + VAD (``SegmentSources``: decode, resample, silero sequence model,
  segmentation) against silero-vad called directly (``get_speech_timestamps`` with the stock
  ONNX model, the usual way, and the sequence model's ``get_speech_timestamps_sequence``) on the
  same 16 kHz speech, one thread each: times real time per core (target: at least 300x).
- Quality: WER against the known TTS text of the chosen label (medoid, and ROVER over the kept
  hypotheses), next to each single system's WER on the same segments.

Run: ``python -m bench.bench_label`` (about 5-10 minutes on 2 busy cores).
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.common import row

SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please send the quarterly report to the finance team before Friday.",
    "We measured the temperature every morning for three weeks.",
    "Our train leaves the station at seven in the evening.",
    "She planted tomatoes and basil in the garden last spring.",
    "The library will be closed on Monday for repairs.",
    "My brother bought a new bicycle with bright red wheels.",
    "The meeting was moved to the small room on the second floor.",
    "Heavy rain flooded the roads outside the old market.",
    "Remember to water the plants while I am away.",
    "The pilot announced that we would land in twenty minutes.",
    "He keeps his grandfather's watch in a wooden box.",
    "Children were playing football in the park after school.",
    "The museum opens a new exhibition about ancient ships.",
    "Could you turn down the music a little, please?",
    "The bakery on the corner sells fresh bread every morning.",
    "Scientists discovered a rare bird in the northern forest.",
    "I forgot my umbrella on the bus this afternoon.",
    "The team celebrated their victory with a big dinner.",
    "Fresh snow covered the mountains during the night.",
    "Our neighbours are painting their house light blue.",
    "The doctor told him to drink more water and rest.",
    "A strong wind knocked over the sign in front of the shop.",
    "The students handed in their essays on time.",
]


def _corpus(folder: Path) -> Path:
    from tests.label_audio import write_speech_corpus
    groups = [SENTENCES[i:i + 4] for i in range(0, len(SENTENCES), 4)]
    return write_speech_corpus(folder, groups)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pipeline(folder: Path, manifest: Path) -> tuple[list[dict], dict]:
    from funfactory.config import load_config
    from funfactory.pipelines.common.runner import beam_options
    from funfactory.pipelines.label.config import LabelConfig
    from funfactory.pipelines.label.pipeline import run_label
    from funfactory.shards.reader import ShardReader

    # keep every voted segment so that the quality figures compare systems on the same set
    cfg = load_config(LabelConfig, None, ["vote.max_estimated_wer=100"])
    cpu0, wall0 = _cpu(), time.perf_counter()
    report = run_label(cfg, manifest, folder / "out", options=beam_options(), echo=lambda *_: None)
    cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
    metas = [s.meta for s in ShardReader(folder / "out", decode=False)]
    return metas, {"report": report, "cpu": cpu, "wall": wall}


def _vad(folder: Path, manifest: Path) -> list[dict]:
    import soxr
    from silero_vad import get_speech_timestamps, load_silero_vad
    from silero_vad.sequence_vad import get_speech_timestamps_sequence

    from funfactory.pipelines.label.config import IngestConfig, VadConfig
    from funfactory.pipelines.label.ingest import list_sources
    from funfactory.pipelines.label.vad import SegmentSources

    audio = np.concatenate([soxr.resample(sf.read(p, dtype="float32")[0], 24000, 16000)
                            for p in sorted(manifest.parent.glob("speech*.wav"))])
    audio = np.tile(audio, int(np.ceil(600 * 16000 / len(audio))))[:600 * 16000]
    (folder / "vad").mkdir()
    sf.write(folder / "vad" / "ten_minutes.wav", audio, 16000, subtype="PCM_16")
    seconds = len(audio) / 16000
    source = list_sources(folder / "vad", IngestConfig())[0]
    dofn = SegmentSources(VadConfig())
    dofn.setup()
    cpu0 = time.process_time()
    items = list(dofn.process(source.as_dict()))
    ours = seconds / (time.process_time() - cpu0)
    import torch
    stock = load_silero_vad(onnx=True)
    cpu0 = time.process_time()
    get_speech_timestamps(torch.from_numpy(audio), stock, sampling_rate=16000)
    direct = seconds / (time.process_time() - cpu0)
    sequence = load_silero_vad(sequence=True)
    cpu0 = time.process_time()
    get_speech_timestamps_sequence(audio, sequence, sampling_rate=16000)
    direct_sequence = seconds / (time.process_time() - cpu0)
    segments = sum(len(i[2]) for i in items if i[1] == "batch")
    print(f"VAD: {segments} segments in {seconds:.0f} s of speech")
    return [row("label_vad", "ingest+VAD x real time per core", ours,
                "silero get_speech_timestamps (onnx) direct", direct, "x"),
            row("label_vad", "ingest+VAD x real time per core", ours,
                "silero sequence model direct", direct_sequence, "x"),
            row("label_vad", "ingest+VAD x real time per core", ours,
                "target", 300.0, "x")]


def _quality(metas: list[dict]) -> list[dict]:
    from funfactory.eval.scoring import wer
    from funfactory.pipelines.label.vote import rover

    metas = [m for m in metas if m.get("reference")]
    refs = [m["reference"] for m in metas]
    systems = sorted({k for m in metas for k, v in m["labels"].items()
                      if isinstance(v, dict) and "text" in v})
    single = {s: wer(refs, [m["labels"].get(s, {}).get("text", "") for m in metas]).rate
              for s in systems}
    chosen = wer(refs, [m["text"] for m in metas]).rate
    rovered = []
    for m in metas:
        hyps = {s: m["labels"][s]["text"] for s in systems if "text" in m["labels"].get(s, {})}
        rovered.append(rover(hyps, m["labels"]["chosen"], "en") if len(hyps) > 2
                       else m["text"])
    rover_rate = wer(refs, rovered).rate
    best = min(single, key=single.get)
    agreement = [m["labels"]["agreement"]["mean_pairwise_wer"] for m in metas
                 if m["labels"].get("agreement")]
    kept = [i for i, m in enumerate(metas) if (m["labels"].get("agreement") or {}).get(
        "mean_pairwise_wer", 0.0) <= 0.35]
    kept_chosen = wer([refs[i] for i in kept], [metas[i]["text"] for i in kept]).rate
    print(f"quality on {len(metas)} segments; chosen by: "
          f"{json.dumps({s: sum(m['labels']['chosen'] == s for m in metas) for s in systems})}; "
          f"mean pairwise WER {np.mean(agreement):.3f}; default threshold 0.35 keeps "
          f"{len(kept)} segments, chosen WER on them {kept_chosen:.3f}")
    rows = [row("label_quality", "WER % chosen label (medoid)", 100 * chosen,
                f"best single system ({best})", 100 * single[best], "%"),
            row("label_quality", "WER % ROVER over the hypotheses", 100 * rover_rate,
                f"best single system ({best})", 100 * single[best], "%")]
    rows += [row("label_quality", f"WER % {s}", 100 * single[s], "chosen label (medoid)",
                 100 * chosen, "%") for s in systems]
    return rows


def main() -> list[dict]:
    import torch
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-label-") as tmp:
        folder = Path(tmp)
        manifest = _corpus(folder / "in")
        metas, run = _pipeline(folder, manifest)
        report = run["report"]
        model = report.extra["model_seconds"]
        hours = report.hours_in
        print(report.text())
        print(f"pipeline: {hours * 3600:.1f} s of audio, {run['wall']:.1f} s wall, "
              f"{run['cpu']:.1f} s CPU, {model:.1f} s in model calls (wall)")
        rows.append(row("label_pipeline", "audio-hours per core-hour (process CPU)",
                        hours / (run["cpu"] / 3600), "audio-hours per wall-hour, 1 worker",
                        hours / (run["wall"] / 3600)))
        rows.append(row("label_pipeline", "% of wall time outside model inference",
                        100 * (1 - model / run["wall"]), "target", 10.0, "%"))
        rows += _quality(metas)
        rows += _vad(folder, manifest)
    return rows


if __name__ == "__main__":
    main()
