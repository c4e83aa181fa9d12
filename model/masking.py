"""SpecAugment-style masking of the encoder output while the heads train.

SpecAugment (Park et al., 2019) masks random time spans and frequency bands of the input features;
section 4.2 trains the heads on a pretrained encoder, and with a frozen encoder whose output is
cached per utterance (`funfactory.model.encoding_cache`) the same idea applies one level up: random
spans of encoder frames and random channels are zeroed before the CTC head and the adaptor. On the
tens of minutes of speech a CPU run sees, this keeps a small CTC head from memorising its training
sentences, and the CTC hypothesis the LLM reads in training (section 2, Figure 2) then carries
errors like those it meets on unseen speech.
"""

from __future__ import annotations

import torch

from funfactory.model.configs import MaskingConfig


def mask_encoder_output(encoded: torch.Tensor, lengths: torch.Tensor,
                        config: MaskingConfig) -> torch.Tensor:
    """A copy of `encoded` (B, T, D) with time spans and channels zeroed, drawn from torch's RNG:
    `config.time_masks_per_second` spans of up to `config.max_time_frames` frames per utterance
    second (of `config.frame_seconds`), and `config.channel_masks` bands of up to
    `config.max_channels` channels per utterance."""
    batch, frames, dim = encoded.shape
    keep = torch.ones(batch, frames, dim, dtype=encoded.dtype, device=encoded.device)
    for b in range(batch):
        length = int(lengths[b])
        spans = int(round(config.time_masks_per_second * length * config.frame_seconds))
        for _ in range(spans):
            width = int(torch.randint(0, config.max_time_frames + 1, ()))
            start = int(torch.randint(0, max(1, length - width), ()))
            keep[b, start:start + width, :] = 0
        for _ in range(config.channel_masks):
            width = int(torch.randint(0, config.max_channels + 1, ()))
            start = int(torch.randint(0, max(1, dim - width), ()))
            keep[b, :, start:start + width] = 0
    return encoded * keep
