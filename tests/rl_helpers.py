"""Shared pieces of the RL tests: a cached tiny Qwen3 folder, TTS utterances, a tiny model, SFT."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

SENTENCES = (
    "The quarterly budget review starts at nine tomorrow.",
    "Please send the deployment notes to the whole team.",
    "Our model reads audio shards from the local disk.",
    "She booked two tickets for the train to Berlin.",
)


def tiny_llm_dir() -> Path:
    """The tiny random Qwen3 folder, built once per machine under the funfactory cache."""
    from funfactory.model.tiny_llm import cached_tiny_llm

    return cached_tiny_llm()


@lru_cache(maxsize=2)
def tts_clips(take: int = 0) -> tuple[tuple[str, np.ndarray], ...]:
    """(text, 16 kHz float32 audio) for SENTENCES, spoken by hibari's bundled voice; each `take`
    is another rendition (another synthesis seed) of the same sentences."""
    import soxr
    from hibari.tts import Hibari

    voice = Hibari(threads=1)
    clips = []
    for i, text in enumerate(SENTENCES):
        audio = np.asarray(voice(text, seed=i + 100 * take), dtype=np.float32)
        clips.append((text, soxr.resample(audio, voice.sample_rate, 16000).astype(np.float32)))
    return tuple(clips)


def tiny_model(texts=SENTENCES, seed: int = 0):
    from funfactory.model.asr import FunASRModel
    from funfactory.model.configs import model_config

    return FunASRModel.build(model_config("tiny", ctc_weight=0.0), tiny_llm_dir(), texts, seed=seed)


def sft(model, waveforms: list[np.ndarray], texts: list[str], steps: int, lr: float = 5e-3,
        stop_loss: float = 0.0) -> float:
    """A plain cross-entropy loop (all parts) so that sampling produces sensible text."""
    from funfactory.model.asr import set_trainable
    from funfactory.training.collate import pad_waveforms

    set_trainable(model, ["encoder", "adaptor", "llm"])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    wav, lengths = pad_waveforms(waveforms)
    loss = float("inf")
    model.train()
    for _ in range(steps):
        out = model({"waveforms": wav, "lengths": lengths, "texts": list(texts)})["loss"]
        optimizer.zero_grad()
        out.backward()
        optimizer.step()
        loss = float(out.detach())
        if loss < stop_loss:
            break
    model.eval()
    return loss
