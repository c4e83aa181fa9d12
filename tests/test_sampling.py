"""Token sampling (model/sampling.py) draws from the warped distribution: brute-force checks."""

from __future__ import annotations

import torch

from funfactory.model.sampling import draw, warp_logits


def test_draw_matches_the_distribution_and_never_draws_a_zero():
    probs = torch.tensor([0.0, 0.05, 0.0, 0.45, 0.2, 0.3, 0.0])
    rows = 200_000
    generator = torch.Generator().manual_seed(0)
    tokens = draw(probs.log().expand(rows, -1), generator)
    counts = torch.bincount(tokens, minlength=len(probs)).double()
    assert counts[probs == 0].sum() == 0
    # each frequency within 5 standard deviations of its probability
    sd = (probs * (1 - probs) / rows).sqrt().double()
    assert ((counts / rows - probs.double()).abs() <= 5 * sd + 1e-12).all(), counts / rows
    # the same seed draws the same tokens; rows with one possible token always draw it
    again = draw(probs.log().expand(rows, -1), torch.Generator().manual_seed(0))
    assert torch.equal(tokens, again)
    one_hot = torch.full((50, 7), float("-inf")).scatter(1, torch.arange(50)[:, None] % 7, 0.0)
    assert torch.equal(draw(one_hot), torch.arange(50) % 7)


def test_warp_logits_equals_brute_force_top_k_and_top_p():
    logits = torch.randn(6, 40, generator=torch.Generator().manual_seed(1)) * 3
    for temperature, top_k, top_p in ((0.7, 0, 1.0), (1.0, 5, 1.0), (1.3, 0, 0.8),
                                      (1.0, 12, 0.6)):
        ours = warp_logits(logits, temperature, top_k, top_p)
        for row, got in zip(logits, ours):
            scaled = row / temperature
            order = scaled.argsort(descending=True).tolist()
            keep = order[:top_k] if top_k else order
            probs = torch.zeros(40)
            probs[keep] = scaled[keep].softmax(-1)
            if top_p < 1.0:  # the smallest most-likely prefix holding top_p of the mass
                mass, kept = 0.0, []
                for i in keep:
                    if mass >= top_p:
                        break
                    kept.append(i)
                    mass += float(probs[i])
                probs = torch.zeros(40)
                probs[kept] = scaled[kept].softmax(-1)
            assert torch.allclose(got.exp(), probs, atol=1e-6)
