"""Choosing among the LLM's transcripts by the CTC head's likelihood (section 2, Figure 2).

The LLM reads the CTC head's hypothesis in its prompt and writes the transcript. A small LLM
trained for minutes still writes, now and then, a fluent sentence of its own where the hypothesis
is poorly spelled ("The website has been updated..." for "the desine revie has pen move to
thursday..."). The CTC head, trained on the same audio, tells such a sentence from a corrected
spelling of what was said. So decoding draws several transcripts from the LLM (its greedy one and
`candidates - 1` samples) and keeps the one the CTC head finds most probable,
log P_CTC(plain text | audio): the rescoring half of hybrid CTC/attention decoding (Watanabe et
al., 2017), over whole transcripts. Every candidate is the LLM's own text; the CTC head only
chooses. The CTC head hears plain text (`FunASRModel.ctc_target`), so case and punctuation do not
count.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from funfactory.model.ctc import BLANK


def ctc_log_likelihoods(log_probs: torch.Tensor, lengths: torch.Tensor, owners: Sequence[int],
                        targets: Sequence[Sequence[int]]) -> list[float]:
    """log P_CTC(targets[i] | utterance owners[i]) for (batch, frames, vocabulary) log-probs;
    -inf where the utterance is too short to emit the target."""
    rows = torch.tensor(list(owners), dtype=torch.long)
    flat = torch.tensor([i for t in targets for i in t], dtype=torch.long)
    loss = F.ctc_loss(log_probs[rows].transpose(0, 1).double().cpu(), flat, lengths[rows].cpu(),
                      torch.tensor([len(t) for t in targets], dtype=torch.long), blank=BLANK,
                      reduction="none", zero_infinity=False)
    return (-loss).tolist()


def choose_by_ctc(model, log_probs: torch.Tensor, lengths: torch.Tensor,
                  candidates: Sequence[Sequence[str]]) -> list[str]:
    """Per utterance, the candidate text with the highest CTC likelihood (the first on a tie)."""
    owners, targets = [], []
    for b, texts in enumerate(candidates):
        for text in texts:
            owners.append(b)
            targets.append(model.ctc_vocab.encode(model.ctc_target(text)))
    scores = iter(ctc_log_likelihoods(log_probs, lengths, owners, targets))
    chosen = []
    for texts in candidates:
        scored = [(next(scores), -k, text) for k, text in enumerate(texts)]
        chosen.append(max(scored)[2])
    return chosen
