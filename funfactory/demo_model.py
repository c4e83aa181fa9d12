"""The demo's recogniser: the `cpu` size trained on TTS speech plus the label job's output.

Two trainer runs (`funfactory train sft`), both on the frozen pretrained Whisper encoder whose
outputs are memoised per utterance (so each clip is encoded once for the whole demo):

1. stage 5 of section 4.2 (`ctc`): the transformer CTC head learns characters;
2. `hypothesis_lora`: the adaptor and LoRA weights of SmolLM2-135M-Instruct learn to write the
   transcript from the audio and the CTC head's hypothesis in the prompt (section 2, Figure 2).
   The model decodes with the LLM's greedy transcript and samples, the CTC head choosing among
   them (`model/rescoring.py`); validation decodes greedily, which is cheaper.

Both validate on held-out sentences along the way (the curves in the report); the final model is
then scored on the held-out sentences by the training voices and by a voice never used in
training, for its CTC head and its LLM decoder from the same decoding pass, in one process per
core.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

# (run name, stage, optimiser steps, learning rate, validate every, seconds of audio per batch)
RUNS = (
    ("cpu-ctc", "ctc", 700, 2e-3, 100, 40),
    ("cpu-llm", "hypothesis_lora", 160, 2e-3, 80, 16),
)
VAL_UTTERANCES = 48


def write_config(run, name: str, stage: str, streams: list[dict], model: dict, steps: int,
                 lr: float, every: int, batch_seconds: float, val_shards: list[str],
                 val_utterances: int, log_every: int) -> Path:
    """One trainer run's YAML under `configs/` (the demo's runs all share this layout)."""
    config = {"data": {"streams": streams, "max_batch_seconds": batch_seconds, "num_workers": 0,
                       "seed": run.seed},
              "model": model,
              "optim": {"lr": lr, "warmup_steps": max(1, steps // 10)},
              "run": {"out_dir": str(run.path("runs", name)), "max_steps": steps,
                      "save_every": steps, "val_every": every, "log_every": log_every,
                      "val_shards": val_shards, "val_max_utterances": val_utterances,
                      "decode_method": "ctc" if stage == "ctc" else "llm", "threads": 2,
                      "precision": "auto",
                      "seed": run.seed}}
    path = run.path("configs", f"{name}.yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def train_config(run, speech: Path, name: str, stage: str, steps: int, lr: float, every: int,
                 batch_seconds: float, init: Path | None) -> Path:
    streams = [{"name": "tts", "shards": [str(speech / "train")]},
               {"name": "label", "shards": [str(run.path("shards", "label"))], "weight": 0.1,
                "cycle": True}]
    model = {"size": "cpu", "stage": stage, "ctc_vocab_size": 257}
    if init is not None:
        model["init_from"] = str(init)
    return write_config(run, name, stage, streams, model, steps, lr, every, batch_seconds,
                        [str(speech / "heldout")], VAL_UTTERANCES, log_every=10)


SCORING_CHUNK = 8  # utterances decoded together (each with the model's LLM candidates)
MAX_SCORING_WORKERS = 4  # each process holds its own copy of the model (about 2 GB)
_worker_model = None  # the model a scoring process loaded (`_load_worker_model`)


def _transcripts(model, audios) -> list[tuple[str, str, str, int]]:
    """(CTC head, LLM greedy, model) transcripts of one chunk, from one decoding pass, and the
    number of LLM candidates the model chose among."""
    from funfactory.model.decode import DecodeOptions, transcribe

    return [(t.ctc.text, t.candidates[0], t.text, len(t.candidates))
            for t in transcribe(model, audios, DecodeOptions(method="llm", max_new_tokens=48))]


def _load_worker_model(folder: str) -> None:
    import torch

    from funfactory.model.checkpoint import load_model

    global _worker_model
    torch.set_num_threads(1)
    _worker_model = load_model(folder)


def _worker_transcripts(audios) -> list[tuple[str, str, str, int]]:
    return _transcripts(_worker_model, audios)


def final_transcripts(folder: Path, sets: dict[str, Path],
                      workers: int = 0) -> dict[str, list[tuple[str, str, str, str, int]]]:
    """Per shard set in `sets` (name -> folder), each utterance's (reference, CTC head, LLM
    greedy, model) transcripts and the number of LLM candidates the model chose among.

    `workers` processes (0: one per core, at most MAX_SCORING_WORKERS) decode chunks of
    SCORING_CHUNK utterances on one thread each: decoding is mostly small token steps, which a
    second thread sped up only about 1.25 times (measured on 2 cores), so two one-thread
    processes finish sooner. A chunk's transcripts do not depend on which process decodes it
    (sampling is seeded per chunk). With one worker the model decodes in this process on its
    threads. Spawned processes import the caller's main module again: call this from a script
    only under `if __name__ == "__main__":`."""
    from funfactory.shards.reader import ShardReader

    samples = {name: list(ShardReader(shards)) for name, shards in sets.items()}
    chunks = [[s.audio for s in items[i:i + SCORING_CHUNK]]
              for items in samples.values() for i in range(0, len(items), SCORING_CHUNK)]
    workers = min(workers or min(len(os.sched_getaffinity(0)), MAX_SCORING_WORKERS), len(chunks))
    if workers <= 1:
        from funfactory.model.checkpoint import load_model

        model = load_model(folder)
        decoded = [_transcripts(model, audios) for audios in chunks]
    else:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                 initializer=_load_worker_model,
                                 initargs=(str(folder),)) as pool:
            decoded = list(pool.map(_worker_transcripts, chunks))
    rows = [row for part in decoded for row in part]
    out, start = {}, 0
    for name, items in samples.items():
        out[name] = [(sample.meta["text"], *row)
                     for sample, row in zip(items, rows[start:start + len(items)])]
        start += len(items)
    return out


def score_final(folder: Path, sets: dict[str, Path], workers: int = 0) -> dict[str, dict]:
    """CER and WER on every utterance of each shard set in `sets` (name -> folder): the CTC
    head, the LLM's greedy transcript and the model's decoding (the LLM's transcripts rescored by
    the CTC head), from one pass (`final_transcripts`)."""
    from funfactory.eval.scoring import score
    from funfactory.training.sft import character_error_rate

    out = {}
    for name, rows in final_transcripts(folder, sets, workers).items():
        refs = [r[0] for r in rows]
        result = {"utterances": len(rows), "candidates": max((r[4] for r in rows), default=0),
                  "examples": [{"reference": r, "ctc": c, "llm_greedy": g, "llm": h}
                               for r, c, g, h, _ in rows[:4]]}
        for i, kind in enumerate(("ctc", "llm_greedy", "llm"), start=1):
            texts = [r[i] for r in rows]
            result[f"{kind}_cer"] = round(character_error_rate(refs, texts), 4)
            result[f"{kind}_wer"] = round(score(refs, texts, language="en", metric="wer").rate, 4)
        out[name] = result
    return out


def curves_png(run, names: list[str], out: Path) -> Path:
    """Validation CER/WER against steps: the CTC run, then the LLM run (CTC and LLM figures)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from funfactory.training.trainer import read_metrics

    fig, ax = plt.subplots(figsize=(7, 4))
    offset = 0
    series: dict[str, list[tuple[int, float]]] = {}
    for name in names:
        rows = read_metrics(run.path("runs", name))
        last = offset
        for row in rows:
            step = offset + row["step"]
            last = max(last, step)
            for key, label in (("val_cer", "CER"), ("val_wer", "WER"), ("val_ctc_cer", "CTC CER"),
                               ("val_ctc_wer", "CTC WER")):
                if key in row:
                    kind = "CTC head" if (name.endswith("ctc") or "ctc" in key) else "LLM"
                    series.setdefault(f"{kind} {label.split()[-1]}", []).append((step, 100 * row[key]))
        offset = last
    for label, points in sorted(series.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xlabel("optimiser steps (CTC run, then LLM run)")
    ax.set_ylabel("error rate on held-out sentences (%)")
    ax.set_ylim(0, 110)
    ax.grid(alpha=0.3)
    ax.legend()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
