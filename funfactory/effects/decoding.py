"""Decoding a shard set with a trained model, and the figures the experiments compare.

Each set is decoded in batches of 8 through `funfactory.model.decode.transcribe`, the same path
`funfactory model transcribe` and the evaluator use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from funfactory.model.decode import DecodeOptions, Transcript

BATCH = 8


@dataclass
class Decoded:
    meta: dict
    transcript: Transcript


def read_set(shards: Path, keep: Callable[[dict], bool] | None = None) -> list:
    from funfactory.shards.reader import ShardReader

    return [s for s in ShardReader(shards) if keep is None or keep(s.meta)]


def even(samples: list, count: int) -> list:
    """`count` of `samples` at even strides (every voice and noise collection)."""
    return samples[::max(1, len(samples) // max(1, count))][:count]


def decode_samples(model, samples: list, options: DecodeOptions,
                   prompt: Callable[[dict], dict] | None = None) -> list[Decoded]:
    from funfactory.model.decode import transcribe

    out = []
    for i in range(0, len(samples), BATCH):
        chunk = samples[i:i + BATCH]
        prompts = [prompt(s.meta) for s in chunk] if prompt is not None else None
        for sample, t in zip(chunk, transcribe(model, [s.audio for s in chunk], options, prompts)):
            out.append(Decoded(sample.meta, t))
    return out


def decode_ctc(models: dict, sets: dict[str, list]) -> dict[str, dict[str, list[Decoded]]]:
    """Each model folder's CTC transcripts of each sample list: {model: {set: decoded}}."""
    from funfactory.model.checkpoint import load_model

    out = {}
    for name, folder in models.items():
        model = load_model(folder)
        out[name] = {s: decode_samples(model, samples, DecodeOptions(method="ctc"))
                     for s, samples in sets.items()}
    return out


def wer(decoded: list[Decoded], ctc: bool = False) -> float:
    """Corpus WER of the transcripts (`ctc`: of the CTC hypotheses from the same pass)."""
    from funfactory.eval.scoring import score

    hypotheses = [d.transcript.ctc.text if ctc else d.transcript.text for d in decoded]
    return round(score([d.meta["text"] for d in decoded], hypotheses, language="en",
                       metric="wer").rate, 4)


def hallucinated_words(decoded: list[Decoded]) -> float:
    """Words written per input whose label is empty (noise-only or silent)."""
    from funfactory.training.rewards import hallucinated_tokens

    if not decoded:
        return 0.0
    return round(sum(hallucinated_tokens(d.transcript.text, "", "en") for d in decoded)
                 / len(decoded), 4)


def examples(decoded: list[Decoded], n: int = 3) -> list[dict]:
    return [{"reference": d.meta["text"], "hypothesis": d.transcript.text} for d in decoded[:n]]


def is_noise_only(meta: dict) -> bool:
    return meta.get("task") == "noise_only" or not meta.get("text", "").strip()
