"""CTC head on the encoder, its vocabulary, and greedy decoding with token timestamps.

Fun-ASR (section 2) trains a CTC decoder on the encoder output; its greedy hypothesis feeds hotword
retrieval (section 5.5) and streaming alignment. The CTC vocabulary here is a subset of the LLM
tokenizer's byte-level BPE: blank (id 0), the single-byte tokens (so every string in every
language can be spelled, byte by byte), then the most frequent LLM tokens of a training text
sample (Chinese characters are mostly one token each, English words one or two). Text becomes CTC
ids by the LLM tokenizer, with any token outside the subset spelled by its bytes; CTC ids become
text by joining their bytes. The vocabulary is stored with the model as the list of LLM ids.
This keeps the head small (a few thousand outputs rather than 151,936), keeps frames-per-token
comfortable at 60 ms per frame for English (characters would need ~15 per second), and makes
CTC tokens the same word pieces the LLM and hotword retrieval use.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from funfactory.errors import FunfactoryError
from funfactory.model.configs import CTCHeadConfig
from funfactory.model.transformer import TransformerStack, attention_mask

BLANK = 0


def _byte_decoder() -> dict[str, int]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {ch: b for b, ch in bytes_to_unicode().items()}


class CTCVocab:
    """Blank + 256 byte tokens + frequent LLM tokens; maps text <-> CTC ids via the LLM tokenizer."""

    def __init__(self, tokenizer, llm_ids: list[int]):
        self.tokenizer = tokenizer
        self._byte_of_char = _byte_decoder()
        self.llm_ids = list(llm_ids)
        self._index = {llm_id: i + 1 for i, llm_id in enumerate(self.llm_ids)}
        self._bytes = [b""] + [self._token_bytes(i) for i in self.llm_ids]
        self._byte_ids = {}
        for i, piece in enumerate(self._bytes):
            if len(piece) == 1 and piece[0] not in self._byte_ids:
                self._byte_ids[piece[0]] = i
        missing = [b for b in range(32, 127) if b not in self._byte_ids]
        if missing:
            raise FunfactoryError(
                f"CTC vocabulary lacks single-byte tokens for bytes {missing[:5]}...: build it with "
                "CTCVocab.build, which includes every byte the tokenizer has a token for")

    def _token_bytes(self, llm_id: int) -> bytes:
        token = self.tokenizer.convert_ids_to_tokens(llm_id)
        try:
            return bytes(self._byte_of_char[ch] for ch in token)
        except (KeyError, TypeError):
            raise FunfactoryError(
                f"LLM token {llm_id} ({token!r}) is not a byte-level BPE token: the CTC vocabulary "
                "needs a byte-level BPE tokenizer (Qwen, GPT-2 style)") from None

    def __len__(self) -> int:
        return len(self.llm_ids) + 1

    @property
    def characters_only(self) -> bool:
        """Whether every token is one byte: the head writes characters (for English, letters)."""
        return all(len(piece) == 1 for piece in self._bytes[1:])

    @classmethod
    def build(cls, tokenizer, texts: Iterable[str], max_size: int = 8000) -> "CTCVocab":
        """The byte tokens plus the `max_size - 257` most frequent LLM tokens of `texts`; with
        `max_size` 257 the vocabulary is bytes only (characters, for English)."""
        byte_encoder = {b: ch for ch, b in _byte_decoder().items()}
        byte_ids = [tokenizer.convert_tokens_to_ids(byte_encoder[b]) for b in range(256)]
        # Some byte-level tokenizers (SmolLM2's) lack tokens for control bytes and for bytes that
        # never occur in UTF-8; those map to the unknown token and are left out.
        byte_ids = [i for i in byte_ids if i is not None and i != tokenizer.unk_token_id]
        counts: Counter[int] = Counter()
        for text in texts:
            counts.update(tokenizer.encode(text, add_special_tokens=False))
        taken = set(byte_ids)
        frequent = [i for i, _ in counts.most_common() if i not in taken]
        return cls(tokenizer, byte_ids + frequent[: max(0, max_size - 257)])

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for llm_id in self.tokenizer.encode(text, add_special_tokens=False):
            if llm_id in self._index:
                ids.append(self._index[llm_id])
            else:
                for b in self._token_bytes(llm_id):
                    if b not in self._byte_ids:
                        raise FunfactoryError(
                            f"{text!r} holds byte {b} that this CTC vocabulary cannot spell (its "
                            "LLM tokenizer has no token for it): clean the text of control "
                            "characters")
                    ids.append(self._byte_ids[b])
        return ids

    def token_bytes(self, ctc_id: int) -> bytes:
        return self._bytes[ctc_id]

    def decode(self, ids: Iterable[int]) -> str:
        return b"".join(self._bytes[i] for i in ids if i != BLANK).decode("utf-8", errors="replace")

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"llm_ids": self.llm_ids}), encoding="utf-8")

    @classmethod
    def load(cls, tokenizer, path: str | Path) -> "CTCVocab":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(tokenizer, [int(i) for i in data["llm_ids"]])


class CTCHead(nn.Module):
    """A linear layer over the encoder, or with `config.num_layers` > 0 a small transformer first:
    a frozen pretrained encoder needs layers that mix context before CTC (a linear head on the
    frozen Whisper encoder plateaus far higher)."""

    def __init__(self, encoder_dim: int, vocab_size: int, config: CTCHeadConfig | None = None):
        super().__init__()
        self.layers = config is not None and config.num_layers > 0
        width = encoder_dim
        if self.layers:
            self.in_proj = nn.Linear(encoder_dim, config.d_model)
            self.stack = TransformerStack(config)
            width = config.d_model
        self.proj = nn.Linear(width, vocab_size)

    def forward(self, encoded: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Log-probabilities (B, T, V); `lengths` (default: every frame) masks the layers'
        attention."""
        x = encoded
        if self.layers:
            if lengths is None:
                lengths = torch.full((x.shape[0],), x.shape[1])
            x, _ = self.stack(self.in_proj(x), attention_mask(lengths.to(x.device), x.shape[1]))
        return F.log_softmax(self.proj(x).float(), dim=-1)


def perturb_hypothesis(text: str, rate: float, seed: int) -> str:
    """`text` with each character substituted, dropped or doubled with probability `rate`:
    recognition-like errors so that an LLM trained on it learns to correct a hypothesis."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz "
    out = []
    for ch in text:
        r = rng.random()
        if r >= rate:
            out.append(ch)
        elif r < rate / 3:
            out.append(rng.choice(letters))
        elif r < 2 * rate / 3:
            out.append(ch + ch)
    return "".join(out)


def ctc_loss(log_probs: torch.Tensor, lengths: torch.Tensor, targets: list[list[int]]) -> torch.Tensor:
    """Mean over the batch of per-utterance CTC loss divided by target length."""
    flat = torch.tensor([i for t in targets for i in t], dtype=torch.long)
    target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    return F.ctc_loss(log_probs.transpose(0, 1), flat, lengths.cpu(), target_lengths,
                      blank=BLANK, reduction="mean", zero_infinity=True)


@dataclass
class TimedToken:
    ctc_id: int
    start: float  # seconds: first frame that emitted it
    end: float  # seconds: end of the last frame that emitted it


@dataclass
class CTCHypothesis:
    text: str
    ids: list[int]
    tokens: list[TimedToken]


def ctc_greedy(log_probs: torch.Tensor, lengths: torch.Tensor, vocab: CTCVocab,
               frame_seconds: float) -> list[CTCHypothesis]:
    """Best path per utterance: collapse repeats, drop blanks, keep each token's frame span."""
    best = log_probs.argmax(dim=-1).cpu()
    results = []
    for b in range(best.shape[0]):
        path = best[b, : int(lengths[b])].tolist()
        tokens: list[TimedToken] = []
        previous = BLANK
        for frame, token in enumerate(path):
            if token != BLANK:
                if token == previous:
                    tokens[-1].end = (frame + 1) * frame_seconds
                else:
                    tokens.append(TimedToken(token, frame * frame_seconds, (frame + 1) * frame_seconds))
            previous = token
        ids = [t.ctc_id for t in tokens]
        results.append(CTCHypothesis(vocab.decode(ids), ids, tokens))
    return results
