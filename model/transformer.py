"""Pre-LN transformer layers with Qwen3's parameter names and shapes, bidirectional or chunk-causal.

The audio encoder and the adaptor (Fun-ASR section 2) are stacks of these layers. Using Qwen3's
layout (RMSNorm, grouped-query attention with per-head q/k RMSNorm and rotary positions, SwiGLU
MLP; names `self_attn.q_proj`, `mlp.gate_proj`, `input_layernorm`, ...) lets section 4.1's idea
work by copying: a text LLM's decoder layers drop into the encoder where shapes match. Unlike the
LLM, attention here is not causal: every frame sees the whole utterance (offline) or every frame
of its own and earlier chunks (chunk-causal, for streaming), and padding keys are masked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from funfactory.model.configs import TransformerConfig

KVCache = list[tuple[torch.Tensor, torch.Tensor]]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return (x.float() * torch.rsqrt(variance + self.eps)).to(x.dtype) * self.weight


def rotary_cos_sin(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim
    inv_freq = 1.0 / theta ** exponents
    angles = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat([angles, angles], dim=-1)
    return emb.cos(), emb.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos.to(x.dtype) + _rotate_half(x) * sin.to(x.dtype)


def attention_mask(lengths: torch.Tensor, num_frames: int, chunk_frames: int = 0) -> torch.Tensor:
    """(B, 1, T, T) boolean mask, True where a query frame may attend to a key frame.

    Keys beyond an utterance's length are masked; with `chunk_frames` > 0 a frame also sees
    no key of a later chunk.
    """
    key_valid = torch.arange(num_frames, device=lengths.device)[None, :] < lengths[:, None]
    mask = key_valid[:, None, None, :].expand(-1, 1, num_frames, -1)
    if chunk_frames > 0:
        chunk = torch.arange(num_frames, device=lengths.device) // chunk_frames
        mask = mask & (chunk[None, :] <= chunk[:, None])[None, None]
    return mask


class SelfAttention(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = c.num_heads, c.num_kv_heads, c.head_dim
        self.q_proj = nn.Linear(c.d_model, c.num_heads * c.head_dim, bias=False)
        self.k_proj = nn.Linear(c.d_model, c.num_kv_heads * c.head_dim, bias=False)
        self.v_proj = nn.Linear(c.d_model, c.num_kv_heads * c.head_dim, bias=False)
        self.o_proj = nn.Linear(c.num_heads * c.head_dim, c.d_model, bias=False)
        self.q_norm = RMSNorm(c.head_dim, c.norm_eps)
        self.k_norm = RMSNorm(c.head_dim, c.norm_eps)
        self.dropout = c.dropout

    def forward(self, x, cos, sin, mask, past: tuple[torch.Tensor, torch.Tensor] | None = None):
        b, t, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(b, t, self.num_heads, self.head_dim)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(b, t, self.num_kv_heads, self.head_dim)).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        present = (k, v)
        groups = self.num_heads // self.num_kv_heads
        if groups > 1:
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1)), present


class SwiGLU(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.gate_proj = nn.Linear(c.d_model, c.ffn_dim, bias=False)
        self.up_proj = nn.Linear(c.d_model, c.ffn_dim, bias=False)
        self.down_proj = nn.Linear(c.ffn_dim, c.d_model, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class TransformerLayer(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(c.d_model, c.norm_eps)
        self.self_attn = SelfAttention(c)
        self.post_attention_layernorm = RMSNorm(c.d_model, c.norm_eps)
        self.mlp = SwiGLU(c)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x, cos, sin, mask, past=None):
        attn, present = self.self_attn(self.input_layernorm(x), cos, sin, mask, past)
        x = x + self.dropout(attn)
        x = x + self.dropout(self.mlp(self.post_attention_layernorm(x)))
        return x, present


class TransformerStack(nn.Module):
    """`num_layers` layers and a final RMSNorm; optional per-layer key/value cache for streaming."""

    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.config = c
        self.layers = nn.ModuleList(TransformerLayer(c) for _ in range(c.num_layers))
        self.norm = RMSNorm(c.d_model, c.norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, offset: int = 0,
                cache: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        positions = torch.arange(offset, offset + x.shape[1], device=x.device)
        cos, sin = rotary_cos_sin(positions, self.config.head_dim, self.config.rope_theta)
        presents: KVCache = []
        for i, layer in enumerate(self.layers):
            x, present = layer(x, cos, sin, mask, None if cache is None else cache[i])
            presents.append(present)
        return self.norm(x), presents
