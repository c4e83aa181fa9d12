"""Adaptor between the audio encoder and the LLM (Fun-ASR section 2).

Frames are first concatenated `downsample` at a time (fewer audio tokens for the LLM), projected
to the adaptor width, passed through two transformer layers and projected to the LLM's hidden size,
so the output can be spliced into the LLM's `inputs_embeds`. With a chunk-causal encoder the
adaptor's attention is chunk-causal too (chunks of `chunk_frames / downsample` frames), so a
stream's final adaptor output equals the offline one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from funfactory.errors import FunfactoryError
from funfactory.model.configs import AdaptorConfig
from funfactory.model.transformer import TransformerStack, attention_mask


class Adaptor(nn.Module):
    def __init__(self, config: AdaptorConfig, encoder_dim: int, llm_dim: int,
                 encoder_chunk_frames: int = 0):
        super().__init__()
        if encoder_chunk_frames % config.downsample:
            raise FunfactoryError(
                f"encoder.chunk_frames={encoder_chunk_frames} is not a multiple of "
                f"adaptor.downsample={config.downsample}: pick sizes that divide")
        self.config = config
        self.chunk_frames = encoder_chunk_frames // config.downsample
        self.down_proj = nn.Linear(encoder_dim * config.downsample, config.d_model)
        self.stack = TransformerStack(config)
        self.out_proj = nn.Linear(config.d_model, llm_dim)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        k = self.config.downsample
        return torch.div(lengths + k - 1, k, rounding_mode="floor")

    def forward(self, encoded: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, encoder_dim) -> (B, ceil(T / downsample), llm_dim) audio embeddings."""
        k = self.config.downsample
        lengths = lengths.to(encoded.device)
        b, t, d = encoded.shape
        pad = (-t) % k
        x = F.pad(encoded, (0, 0, 0, pad)).reshape(b, (t + pad) // k, k * d)
        out_lengths = self.output_lengths(lengths)
        mask = attention_mask(out_lengths, x.shape[1], self.chunk_frames)
        x, _ = self.stack(self.down_proj(x), mask)
        out = self.out_proj(x)
        valid = torch.arange(out.shape[1], device=out.device)[None, :] < out_lengths[:, None]
        return out * valid[..., None], out_lengths
