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
training, for its CTC head and its LLM decoder from the same decoding pass.
"""

from __future__ import annotations

from pathlib import Path

import yaml

# (run name, stage, optimiser steps, learning rate, validate every, seconds of audio per batch)
RUNS = (
    ("cpu-ctc", "ctc", 700, 2e-3, 100, 40),
    ("cpu-llm", "hypothesis_lora", 160, 2e-3, 80, 16),
)
VAL_UTTERANCES = 48
# LoRA over the frozen LLM trains in fp32: on small batches bf16 autocast recasts the frozen
# weights every step, and measured on an AMX CPU its steps ran slower (0.33 steps/s against
# about 0.45 in fp32); the CTC head and decoding gain from bf16 there ("auto").
LLM_PRECISION = "fp32"


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
                      "precision": LLM_PRECISION if stage != "ctc" else "auto",
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


def score_final(folder: Path, shards: Path) -> dict:
    """CER and WER on every utterance of `shards`: the CTC head, the LLM's greedy transcript and
    the model's decoding (the LLM's transcripts rescored by the CTC head), from one pass."""
    from funfactory.eval.scoring import score
    from funfactory.model.checkpoint import load_model
    from funfactory.model.decode import DecodeOptions, transcribe
    from funfactory.shards.reader import ShardReader
    from funfactory.training.sft import character_error_rate

    model = load_model(folder)
    samples = list(ShardReader(shards))
    refs: list[str] = []
    hyps: dict[str, list[str]] = {"ctc": [], "llm_greedy": [], "llm": []}
    for i in range(0, len(samples), 8):
        chunk = samples[i:i + 8]
        for sample, t in zip(chunk, transcribe(model, [s.audio for s in chunk],
                                               DecodeOptions(method="llm", max_new_tokens=48))):
            refs.append(sample.meta["text"])
            hyps["ctc"].append(t.ctc.text)
            hyps["llm_greedy"].append(t.candidates[0])
            hyps["llm"].append(t.text)
    examples = [{"reference": r, "ctc": c, "llm_greedy": g, "llm": h}
                for r, c, g, h in list(zip(refs, *hyps.values()))[:4]]
    out = {"utterances": len(refs), "candidates": model.config.decode_candidates,
           "examples": examples}
    for name, texts in hyps.items():
        out[f"{name}_cer"] = round(character_error_rate(refs, texts), 4)
        out[f"{name}_wer"] = round(score(refs, texts, language="en", metric="wer").rate, 4)
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
