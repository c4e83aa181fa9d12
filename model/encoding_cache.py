"""Per-utterance memo of a frozen pretrained encoder's output (section 4.1's Whisper encoder).

While the encoder is frozen its output for a clip never changes, and on a CPU the Whisper base
encoder costs more than every trainable part of a step together. `encode_frozen` looks each
utterance up by a hash of its samples and of the encoder's identity, encodes only the misses (one
batch) and keeps the result in float16 for the rest of the process, so a second epoch, a
validation pass or the next training stage in the same process pays nothing for it. Augmented
copies hash differently and are encoded like any new clip. The memo stops growing at
`MAX_BYTES`; past that, misses are encoded and not kept.

Since the output is kept in float16 anyway, the encoder runs at `auto` precision whatever the
run's own precision (`model/precision.py`: bf16 on CUDA and on CPUs with AMX). A run that trains
its LoRA weights in fp32 so encodes its audio as the CTC head's bf16 run and decoding do, and on
the 2-core AMX machine the Whisper base encoder ran 1.6 times faster.
"""

from __future__ import annotations

import hashlib
import weakref

import torch

from funfactory.model.precision import autocast

MAX_BYTES = 3 << 30

_memo: dict[bytes, torch.Tensor] = {}
_held = [0]
_identities: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # encoder -> (state, identity)


def _key(identity: str, samples: torch.Tensor) -> bytes:
    digest = hashlib.sha1(identity.encode())
    digest.update(samples.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.digest()


def _identity(model) -> str:
    """The encoder's config and weight sums; recomputed only when a weight tensor was replaced
    or changed in place (its storage or version counter moved), not on every batch."""
    params = list(model.encoder.parameters())
    state = (repr(model.config.whisper), tuple((p.data_ptr(), p._version) for p in params))
    if _identities.get(model.encoder, (None,))[0] != state:
        weights = [p.detach().float().sum().item() for p in params]
        _identities[model.encoder] = (state, repr(model.config.whisper) + repr(weights))
    return _identities[model.encoder][1]


def encode_frozen(model, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, d) encoder output and (B,) lengths of `model`'s frozen encoder, memoised."""
    identity = _identity(model)
    keys = [_key(identity, waveforms[b, : int(lengths[b])]) for b in range(waveforms.shape[0])]
    missing = [b for b, k in enumerate(keys) if k not in _memo]
    fresh: dict[int, torch.Tensor] = {}
    if missing:
        index = torch.tensor(missing, device=waveforms.device)
        with torch.no_grad(), autocast("auto", waveforms.device):
            feats, feat_lengths = model.frontend(waveforms[index], lengths[index])
            encoded, enc_lengths = model.encoder(feats, feat_lengths)
        for row, b in enumerate(missing):
            fresh[b] = encoded[row, : int(enc_lengths[row])].to(torch.float16).cpu()
            if _held[0] < MAX_BYTES:
                _memo[keys[b]] = fresh[b]
                _held[0] += fresh[b].numel() * 2
    rows = [fresh[b] if b in fresh else _memo[keys[b]] for b in range(len(keys))]
    out_lengths = torch.tensor([r.shape[0] for r in rows], device=waveforms.device)
    out = torch.zeros(len(rows), int(out_lengths.max()), rows[0].shape[1], device=waveforms.device)
    for b, r in enumerate(rows):
        out[b, : r.shape[0]] = r.to(waveforms.device, torch.float32)
    return out, out_lengths
