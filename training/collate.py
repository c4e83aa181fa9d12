"""Batches for the trainers: padded waveforms, optional fbank features and token labels.

`FunASRModel` computes its own fbank from waveforms (report section 2), so an SFT batch needs only
"waveforms", "lengths", "texts" and "prompts". Encoder pre-training (section 4.1) works on
features: with a `frontend` the collator also returns Kaldi fbank + CMVN + LFR "features"
(B, T, 560) with "feature_lengths" and a "feature_mask", computed in the DataLoader worker. With a
`tokenize` function it returns "labels" (B, L) padded with -100 and "label_lengths" (AED targets).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

IGNORE_INDEX = -100


def pad_waveforms(waveforms: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(w) for w in waveforms], dtype=torch.long)
    batch = torch.zeros(len(waveforms), int(lengths.max()) if len(waveforms) else 0)
    for i, w in enumerate(waveforms):
        batch[i, : len(w)] = torch.from_numpy(np.asarray(w, dtype=np.float32))
    return batch, lengths


def pad_labels(labels: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(t) for t in labels], dtype=torch.long)
    out = torch.full((len(labels), max(1, int(lengths.max()) if len(labels) else 1)), IGNORE_INDEX,
                     dtype=torch.long)
    for i, t in enumerate(labels):
        out[i, : len(t)] = torch.tensor(list(t), dtype=torch.long)
    return out, lengths


@dataclass
class Collator:
    frontend: torch.nn.Module | None = None
    tokenize: Callable[[str], list[int]] | None = None

    def __call__(self, samples) -> dict:
        """`samples` are `loader.DecodedSample`s (key, meta, audio, stream, augmented)."""
        waveforms, lengths = pad_waveforms([s.audio for s in samples])
        batch = {
            "keys": [s.key for s in samples],
            "waveforms": waveforms,
            "lengths": lengths,
            "texts": [s.meta["text"] for s in samples],
            "prompts": [s.meta.get("prompt") for s in samples],
            "languages": [s.meta["language"] for s in samples],
            "tasks": [s.meta["task"] for s in samples],
            "streams": [s.stream for s in samples],
            "augmented": [s.augmented for s in samples],
            "seconds": float(lengths.sum()) / 16000.0,
        }
        if self.frontend is not None:
            with torch.no_grad():
                feats, feat_lengths = self.frontend(waveforms, lengths)
            batch["features"] = feats
            batch["feature_lengths"] = feat_lengths
            batch["feature_mask"] = (torch.arange(feats.shape[1])[None, :]
                                     < feat_lengths[:, None])
        if self.tokenize is not None:
            batch["labels"], batch["label_lengths"] = pad_labels(
                [self.tokenize(t) for t in batch["texts"]])
        return batch
