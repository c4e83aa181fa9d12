"""Which RL subset a sample belongs to, and how many of each to keep (Fun-ASR section 4.4.3).

The report builds its RL set from five kinds of samples, in equal shares (20 % each):

- **hard**: the external systems agree with each other (every pairwise error rate below
  ``agreement_max``, 5 %) while the current model differs (its error rate against the agreed label
  above ``model_error_min``, 10 %); at least ``min_systems`` (3) systems;
- **long**: segments longer than ``long_seconds`` (20 s);
- **hallucination**: the model's output is much longer than the reference (more than
  ``length_ratio`` x its tokens + ``length_margin``), repeats phrases the reference does not,
  or writes text on noise-only input; and references that themselves repeat (real repetitions,
  which the model must learn to keep);
- **keyword**: samples with keywords or hotwords (prompt hotwords, RL keywords);
- **regular**: everything else.

`classify` returns every subset a sample qualifies for, with the figures behind each; it is
assigned the first in ``priority``. `quotas` makes the shares equal: each present subset keeps as
many samples as the smallest present subset has (capped by ``per_subset_max``), chosen by a
seeded hash of the key so a rerun keeps the same ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from funfactory.eval.repetition import excess_repetition_tokens, repetition_loops
from funfactory.eval.scoring import pairwise_agreement, score
from funfactory.eval.textnorm import scoring_tokens
from funfactory.pipelines.rl.config import RLDataConfig

SUBSETS = ("hard", "long", "hallucination", "keyword", "regular")


@dataclass
class Classification:
    key: str
    subset: str
    qualifies: list[str]
    figures: dict = field(default_factory=dict)

    def tag(self) -> dict:
        """The `rl` field written into the sample's JSON."""
        return {"subset": self.subset, "qualifies": self.qualifies, **self.figures}


def external_hypotheses(meta: dict, config: RLDataConfig) -> dict[str, str]:
    labels = meta.get("labels") or {}
    skip = set(config.ignore_labels) | {config.model_label}
    return {name: entry["text"] for name, entry in labels.items()
            if name not in skip and isinstance(entry, dict) and isinstance(entry.get("text"), str)}


def is_hard_case(externals: dict[str, str], model_hypothesis: str | None, reference: str,
                 language: str | None, config: RLDataConfig) -> tuple[bool, dict]:
    """The hard-case rule: systems agree (max pairwise < agreement_max), model differs."""
    if model_hypothesis is None or len(externals) < config.min_systems or not reference.strip():
        return False, {}
    agreement = pairwise_agreement(externals, language)
    worst = max(rate for i, row in enumerate(agreement.matrix) for j, rate in enumerate(row)
                if i != j)
    model_rate = score([reference], [model_hypothesis], language=language).utterances[0].rate
    figures = {"max_pairwise_error": round(worst, 4), "model_error": round(model_rate, 4)}
    return worst < config.agreement_max and model_rate > config.model_error_min, figures


def hallucination_reasons(reference: str, model_hypothesis: str | None, language: str | None,
                          config: RLDataConfig) -> list[str]:
    reasons = []
    if repetition_loops(reference, language):
        reasons.append("reference_repeats")
    if model_hypothesis is not None:
        ref_tokens = len(scoring_tokens(reference, language))
        hyp_tokens = len(scoring_tokens(model_hypothesis, language))
        if ref_tokens == 0 and hyp_tokens > 0:
            reasons.append("text_on_noise")
        elif hyp_tokens > config.length_ratio * ref_tokens + config.length_margin:
            reasons.append("output_too_long")
        if excess_repetition_tokens(model_hypothesis, reference, language) > 0:
            reasons.append("output_repeats")
    return reasons


def sample_keywords(meta: dict) -> list[str]:
    rl = meta.get("rl") or {}
    prompt = meta.get("prompt") or {}
    return list(rl.get("keywords") or meta.get("keywords") or prompt.get("hotwords") or [])


def classify(meta: dict, model_hypothesis: str | None, config: RLDataConfig) -> Classification:
    reference, language = meta.get("text", ""), meta.get("language") or None
    qualifies, figures = [], {}
    hard, hard_figures = is_hard_case(external_hypotheses(meta, config), model_hypothesis,
                                      reference, language, config)
    figures.update(hard_figures)
    if hard:
        qualifies.append("hard")
    if float(meta.get("duration", 0.0)) > config.long_seconds:
        qualifies.append("long")
    reasons = hallucination_reasons(reference, model_hypothesis, language, config)
    if reasons:
        qualifies.append("hallucination")
        figures["hallucination_reasons"] = reasons
    keywords = sample_keywords(meta)
    if keywords:
        qualifies.append("keyword")
        figures["keywords"] = keywords
    if model_hypothesis is not None:
        figures["model_hypothesis"] = model_hypothesis
    qualifies.append("regular")
    subset = next(s for s in config.priority if s in qualifies)
    return Classification(meta["key"], subset, qualifies, figures)


def selection_rank(key: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}\x1f{key}".encode("utf-8")).hexdigest()


def quotas(counts: dict[str, int], config: RLDataConfig) -> dict[str, int]:
    """Equal shares: every present subset keeps the size of the smallest present one."""
    present = [n for n in counts.values() if n > 0]
    if not present:
        return {s: 0 for s in SUBSETS}
    share = min(present)
    if config.per_subset_max > 0:
        share = min(share, config.per_subset_max)
    return {s: (share if counts.get(s, 0) > 0 else 0) for s in SUBSETS}


def select(classes: list[Classification], config: RLDataConfig) -> tuple[dict[str, Classification], dict]:
    """The kept samples by key, and a summary (counts, quotas, missing subsets)."""
    by_subset: dict[str, list[Classification]] = {s: [] for s in SUBSETS}
    for c in classes:
        by_subset[c.subset].append(c)
    counts = {s: len(v) for s, v in by_subset.items()}
    quota = quotas(counts, config)
    kept: dict[str, Classification] = {}
    for subset, members in by_subset.items():
        members.sort(key=lambda c: selection_rank(c.key, config.seed))
        for c in members[: quota[subset]]:
            kept[c.key] = c
    summary = {"candidates": counts, "kept": {s: quota[s] for s in SUBSETS},
               "missing_subsets": [s for s in SUBSETS if counts[s] == 0]}
    return kept, summary
