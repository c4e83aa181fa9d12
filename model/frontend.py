"""Acoustic frontend: Kaldi-compatible 80-dim log-mel fbank, global CMVN, low-frame-rate stacking.

Fun-ASR (section 2) feeds its encoder 80-dim fbank; like FunASR's Paraformer/SenseVoice frontends,
frames are then stacked 7 at a time every 6 frames (LFR), so one encoder frame covers 60 ms.

`kaldi_fbank` is a batched torch port of Kaldi's `compute-fbank` defaults (25 ms Povey window,
10 ms shift, DC removal, pre-emphasis 0.97, 512-point power spectrum, Kaldi mel scale from 20 Hz to
Nyquist, log floored at float epsilon, `snip_edges=true`, no dither) on waveforms scaled to the
16-bit range as Kaldi reads them. tests/test_model_frontend.py checks it against
`kaldi-native-fbank`. Every fbank frame depends only on its own 400 samples, and `lfr_stack`
marks which stacked frames still wait for future fbank frames, so streaming can compute features
chunk by chunk and end with exactly the offline features.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from funfactory.errors import FunfactoryError
from funfactory.model.cmvn import GlobalCMVN
from funfactory.model.configs import FrontendConfig

FLOAT_EPSILON = 1.1920928955078125e-07
INT16_SCALE = 32768.0


def _mel(freq: torch.Tensor | float) -> torch.Tensor:
    return 1127.0 * torch.log1p(torch.as_tensor(freq, dtype=torch.float64) / 700.0)


def kaldi_mel_banks(num_bins: int, padded_window: int, sample_rate: int,
                    low_freq: float, high_freq: float = 0.0) -> torch.Tensor:
    """Kaldi's triangular mel filters as a (padded_window // 2 + 1, num_bins) matrix."""
    nyquist = sample_rate / 2.0
    high = high_freq if high_freq > 0 else nyquist + high_freq
    num_fft_bins = padded_window // 2
    mel_low, mel_high = _mel(low_freq), _mel(high)
    delta = (mel_high - mel_low) / (num_bins + 1)
    bin_mel = _mel(torch.arange(num_fft_bins, dtype=torch.float64) * (sample_rate / padded_window))
    left = mel_low + delta * torch.arange(num_bins, dtype=torch.float64)
    center, right = left + delta, left + 2 * delta
    m = bin_mel[:, None]
    up = (m - left) / (center - left)
    down = (right - m) / (right - center)
    weights = torch.where(m <= center, up, down)
    weights = torch.where((m > left) & (m < right), weights, torch.zeros_like(weights))
    return torch.cat([weights, torch.zeros(1, num_bins, dtype=torch.float64)]).float()


def povey_window(length: int) -> torch.Tensor:
    n = torch.arange(length, dtype=torch.float64)
    return (0.5 - 0.5 * torch.cos(2 * math.pi * n / (length - 1))).pow(0.85).float()


def num_fbank_frames(num_samples: torch.Tensor, frame_length: int, frame_shift: int) -> torch.Tensor:
    """Kaldi's frame count with snip_edges: 1 + (n - length) // shift, 0 when n < length."""
    n = torch.as_tensor(num_samples)
    return torch.where(n >= frame_length, 1 + (n - frame_length) // frame_shift,
                       torch.zeros_like(n))


def lfr_stack(feats: torch.Tensor, lengths: torch.Tensor, m: int, n: int,
              final: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack `m` frames every `n` (FunASR's LFR), padding the start with the first frame.

    With `final=False` only stacked frames whose `m` source frames all exist are returned (what a
    stream can emit before it has seen the end); with `final=True` the tail repeats the last frame.
    """
    left = (m - 1) // 2
    device = feats.device
    lengths = lengths.to(device)
    if final:
        out_lengths = torch.div(lengths + n - 1, n, rounding_mode="floor")
    else:
        out_lengths = torch.clamp(torch.div(lengths + left - m, n, rounding_mode="floor") + 1, min=0)
    out_lengths = torch.where(lengths > 0, out_lengths, torch.zeros_like(out_lengths))
    t_out = int(out_lengths.max()) if len(lengths) else 0
    base = (torch.arange(t_out, device=device)[:, None] * n
            + torch.arange(m, device=device)[None, :] - left)  # (T_out, m)
    last = torch.clamp(lengths - 1, min=0)[:, None, None]
    index = torch.minimum(base.clamp(min=0)[None].expand(len(lengths), -1, -1), last)
    batch = torch.arange(len(lengths), device=device)[:, None, None]
    stacked = feats[batch, index]  # (B, T_out, m, D)
    stacked = stacked.reshape(len(lengths), t_out, m * feats.shape[-1])
    valid = torch.arange(t_out, device=device)[None, :] < out_lengths[:, None]
    return stacked * valid[..., None], out_lengths


class Frontend(nn.Module):
    """Waveforms (B, N) in [-1, 1] at 16 kHz -> normalised LFR features (B, T, 80 * lfr_m)."""

    def __init__(self, config: FrontendConfig):
        super().__init__()
        self.config = config
        self.frame_length = int(config.sample_rate * config.frame_length_ms / 1000)
        self.frame_shift = int(config.sample_rate * config.frame_shift_ms / 1000)
        self.padded_window = 1 << (self.frame_length - 1).bit_length()
        self.register_buffer("window", povey_window(self.frame_length), persistent=False)
        self.register_buffer("mel_banks", kaldi_mel_banks(
            config.num_mel_bins, self.padded_window, config.sample_rate, config.low_freq),
            persistent=False)
        self.cmvn = GlobalCMVN(config.num_mel_bins)

    def fbank(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Kaldi log-mel fbank of each waveform's first `lengths[b]` samples; padded frames are 0."""
        if waveforms.dim() != 2:
            raise FunfactoryError(
                f"fbank expects waveforms shaped (batch, samples), got {tuple(waveforms.shape)}")
        frame_lengths = num_fbank_frames(lengths.to(waveforms.device), self.frame_length,
                                         self.frame_shift)
        x = waveforms.float() * INT16_SCALE
        if x.shape[1] < self.frame_length:
            x = nn.functional.pad(x, (0, self.frame_length - x.shape[1]))
        frames = x.unfold(1, self.frame_length, self.frame_shift)  # (B, T, L)
        frames = frames - frames.mean(dim=-1, keepdim=True)
        c = self.config.preemph_coeff
        frames = torch.cat([frames[..., :1] * (1 - c), frames[..., 1:] - c * frames[..., :-1]], dim=-1)
        frames = frames * self.window
        spectrum = torch.fft.rfft(frames, n=self.padded_window)
        power = spectrum.real.square() + spectrum.imag.square()
        feats = torch.log(torch.clamp(power @ self.mel_banks, min=FLOAT_EPSILON))
        valid = torch.arange(feats.shape[1], device=feats.device)[None, :] < frame_lengths[:, None]
        t_max = int(frame_lengths.max()) if len(frame_lengths) else 0
        return (feats * valid[..., None])[:, :t_max], frame_lengths

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, frame_lengths = self.fbank(waveforms, lengths)
        feats = self.cmvn(feats)
        return lfr_stack(feats, frame_lengths, self.config.lfr_m, self.config.lfr_n)
