"""Drawing tokens: temperature, top-k and top-p, then one uniform number per row.

The LLM's candidate transcripts (section 5.5's decoding, `model/decode.py`) and GRPO's rollouts
(section 4.4) sample a token per row and step. `torch.multinomial` draws one exponential number
per vocabulary entry for that (3M for 64 rows of a 49k vocabulary: about 50 ms on one CPU core,
15 % of sampling nine candidates); inverting the cumulative distribution with one uniform number
per row draws from the same distribution at the cost of a cumulative sum.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def warp_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0,
                top_p: float = 1.0) -> torch.Tensor:
    """Log-probabilities to draw from: `logits` (rows, vocab) over `temperature`, cut to the
    `top_k` largest (0: all) and to the smallest set holding `top_p` of the mass (1: all)."""
    logits = logits.float() / temperature
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return F.log_softmax(logits, dim=-1)


def draw(log_probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row of `log_probs` (rows, vocab), drawn from its distribution: the first
    token whose cumulative probability reaches u * total for u uniform in (0, 1], so a token of
    probability 0 is never drawn."""
    cumulative = log_probs.float().exp().cumsum(-1)
    u = 1.0 - torch.rand(cumulative.shape[0], 1, generator=generator, device=cumulative.device)
    token = torch.searchsorted(cumulative, u * cumulative[:, -1:])
    return token.squeeze(1).clamp(max=cumulative.shape[-1] - 1)


class SampledToken:
    """A transformers logits processor that draws each row's next token itself (`warp_logits`,
    `draw`) and leaves it the only finite score, so greedy search (`do_sample=False`) emits it."""

    def __init__(self, temperature: float, top_k: int, top_p: float,
                 generator: torch.Generator | None):
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.generator = generator

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        token = draw(warp_logits(scores, self.temperature, self.top_k, self.top_p),
                     self.generator)
        return torch.full_like(scores, float("-inf")).scatter(1, token[:, None], 0.0)
