"""Global cepstral mean and variance normalisation of fbank features (Fun-ASR section 2 frontend).

Statistics are accumulated in float64 over an iterable of 16 kHz float32 waveforms (the shards
reader feeds it; nothing here reads shards), then stored as buffers of the model so a checkpoint
carries them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from funfactory.errors import FunfactoryError


class GlobalCMVN(nn.Module):
    """(x - mean) * inv_std per feature dimension; identity until statistics are set."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("inv_std", torch.ones(dim))

    def set_stats(self, mean: torch.Tensor, inv_std: torch.Tensor) -> None:
        if mean.shape != self.mean.shape or inv_std.shape != self.inv_std.shape:
            raise FunfactoryError(
                f"CMVN statistics have shape {tuple(mean.shape)}, the frontend expects "
                f"{tuple(self.mean.shape)}: recompute them with the same num_mel_bins")
        self.mean.copy_(mean)
        self.inv_std.copy_(inv_std)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.mean) * self.inv_std


def compute_global_cmvn(frontend, waveforms: Iterable[np.ndarray], sample_rate: int = 16000,
                        min_std: float = 1e-3, max_utterances: int | None = None) -> int:
    """Accumulate fbank mean/std over `waveforms` into `frontend.cmvn`; return the frame count.

    `frontend` is a `funfactory.model.frontend.Frontend`; each waveform a 1-D float array at
    `sample_rate` (must equal the frontend's rate).
    """
    if sample_rate != frontend.config.sample_rate:
        raise FunfactoryError(
            f"CMVN audio is at {sample_rate} Hz but the frontend expects "
            f"{frontend.config.sample_rate} Hz: resample before computing statistics")
    dim = frontend.config.num_mel_bins
    total = torch.zeros(dim, dtype=torch.float64)
    total_sq = torch.zeros(dim, dtype=torch.float64)
    count = 0
    with torch.no_grad():
        for i, audio in enumerate(waveforms):
            if max_utterances is not None and i >= max_utterances:
                break
            wave = torch.as_tensor(np.asarray(audio, dtype=np.float32)).reshape(1, -1)
            wave = wave.to(frontend.cmvn.mean.device)
            feats, lengths = frontend.fbank(wave, torch.tensor([wave.shape[1]]))
            frames = feats[0, : int(lengths[0])].double().cpu()
            total += frames.sum(0)
            total_sq += frames.square().sum(0)
            count += frames.shape[0]
    if count == 0:
        raise FunfactoryError(
            "CMVN saw no fbank frames: give it at least one waveform longer than 25 ms")
    mean = total / count
    std = torch.sqrt(torch.clamp(total_sq / count - mean.square(), min=0.0)).clamp(min=min_std)
    device = frontend.cmvn.mean.device
    frontend.cmvn.set_stats(mean.float().to(device), (1.0 / std).float().to(device))
    return count
