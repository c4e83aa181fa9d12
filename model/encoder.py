"""Audio encoder: a linear projection of LFR features into a transformer (Fun-ASR section 2).

Section 4.1 initialises the encoder from a text LLM rather than from scratch; `init_from_llm`
copies the first k decoder layers of a local Qwen3-style checkpoint (attention, MLP and norm
weights, `model.layers.{i}.*`) into the encoder wherever the shapes match, leaving the input
projection to learn. With `chunk_frames` > 0 attention is chunk-causal and `forward_chunk` runs one
chunk at a time against a key/value cache of the past, giving the same output as `forward`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from funfactory.errors import FunfactoryError, MissingAssetError
from funfactory.model.configs import EncoderConfig
from funfactory.model.transformer import KVCache, TransformerStack, attention_mask


class AudioEncoder(nn.Module):
    def __init__(self, config: EncoderConfig, input_dim: int):
        super().__init__()
        self.config = config
        self.input_proj = nn.Linear(input_dim, config.d_model)
        self.stack = TransformerStack(config)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, input_dim) features -> (B, T, d_model) encodings; padded frames are zeroed."""
        lengths = lengths.to(feats.device)
        mask = attention_mask(lengths, feats.shape[1], self.config.chunk_frames)
        out, _ = self.stack(self.input_proj(feats), mask)
        valid = torch.arange(out.shape[1], device=out.device)[None, :] < lengths[:, None]
        return out * valid[..., None], lengths

    def forward_chunk(self, feats: torch.Tensor, offset: int,
                      cache: KVCache | None) -> tuple[torch.Tensor, KVCache]:
        """Encode one chunk (1, t, input_dim) starting at frame `offset`; return it and the cache."""
        if self.config.chunk_frames <= 0:
            raise FunfactoryError(
                "this encoder uses full attention (chunk_frames=0), so it has no streaming cache; "
                "build it with encoder.chunk_frames > 0 or re-encode the whole prefix")
        t = feats.shape[1]
        past = 0 if cache is None else cache[0][0].shape[2]
        mask = torch.ones(1, 1, t, past + t, dtype=torch.bool, device=feats.device)
        return self.stack(self.input_proj(feats), mask, offset=offset, cache=cache)


def _llm_tensor_names(llm_dir: Path) -> dict[str, Path]:
    index = llm_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return {name: llm_dir / file for name, file in weight_map.items()}
    single = llm_dir / "model.safetensors"
    if not single.is_file():
        raise MissingAssetError(
            f"{llm_dir} has neither model.safetensors nor model.safetensors.index.json: "
            "point init_from_llm at a local Hugging Face checkpoint folder saved with safetensors")
    from safetensors import safe_open

    with safe_open(str(single), framework="pt") as f:
        return {name: single for name in f.keys()}


def init_from_llm(encoder: AudioEncoder, llm_dir: str | Path,
                  num_layers: int | None = None) -> dict[str, list[str]]:
    """Copy `model.layers.{i}.*` of a local LLM into encoder layer i for i < num_layers.

    Returns {"copied": [...], "skipped": [...]} naming each encoder parameter; a parameter is
    skipped when the LLM has no such tensor or its shape differs.
    """
    from safetensors import safe_open

    llm_dir = Path(llm_dir)
    names = _llm_tensor_names(llm_dir)
    k = min(num_layers or encoder.config.num_layers, encoder.config.num_layers)
    report: dict[str, list[str]] = {"copied": [], "skipped": []}
    wanted: dict[str, tuple[str, torch.nn.Parameter]] = {}
    for name, param in encoder.stack.layers.named_parameters():
        layer = int(name.split(".", 1)[0])
        if layer < k:
            wanted[f"model.layers.{name}"] = (f"stack.layers.{name}", param)
    handles = {}
    try:
        with torch.no_grad():
            for source, (target, param) in wanted.items():
                file = names.get(source)
                if file is None:
                    report["skipped"].append(target)
                    continue
                if file not in handles:
                    handles[file] = safe_open(str(file), framework="pt")
                tensor = handles[file].get_tensor(source)
                if tuple(tensor.shape) != tuple(param.shape):
                    report["skipped"].append(target)
                    continue
                param.copy_(tensor.to(param.dtype))
                report["copied"].append(target)
    finally:
        handles.clear()
    return report
