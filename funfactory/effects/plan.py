"""How big an effects run is (sized by steps and utterance counts, never by time), and the run
folder every experiment writes into."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EffectsPlan:
    model_size: str  # `cpu` (pretrained Whisper encoder + SmolLM2) or `tiny` (random, for tests)
    ctc_steps: int  # optimiser steps of every CTC-head run (stage 5)
    ctc_lr: float
    ctc_batch_seconds: float
    llm_steps: int  # steps of the `hypothesis_lora` run the hotword and GRPO experiments share
    llm_lr: float
    llm_batch_seconds: float
    grpo_steps: int
    grpo_group_size: int
    grpo_utterances_per_step: int
    grpo_lr: float
    rl_utterances: int  # RL candidates: this many hotword training utterances, half as many
    # each of their noise-only inputs, plain training utterances and noise-only training samples
    hotword_test_utterances: int  # hotword test utterances decoded (the vocabulary: every list's)
    grpo_held_out: int  # held-out RL set: this many hotword test utterances, a third as many noise-only
    train_utterances: int  # training speech every run reads: an even subset (every voice; or all)
    subset: int  # training utterances the streaming and RL pipelines read
    test_utterances: int  # held-out utterances in each test set
    hotword_sentences: int = 0  # sentences of each section of the hotword pool spoken (0: all)
    online_noise_fraction: float = 0.1  # share of training samples mixed with noise on the fly
    noise_only_share: float = 0.25  # noise-only samples per training utterance (section 5.6)
    noise_only_weight: float = 0.15  # their stream's draw weight against the speech streams
    streaming_weight: float = 0.5  # the streaming-prefix stream's draw weight
    hotword_weight: float = 0.5  # the hotword stream's draw weight in the LLM run
    silent_inputs: int = 8  # digital silence and near-silent dither clips in the noise-only test
    max_new_tokens: int = 48


PLANS = {
    # Sized for an hour of a quiet 2-core machine: the demo's recipe (40 s CTC batches, the LLM's
    # 160 steps) on all its training speech, with fewer CTC steps since four heads are trained.
    # The RL job keeps about 96 of its 120 candidates; 48 GRPO steps of 2 utterances see each once.
    "full": EffectsPlan(model_size="cpu", ctc_steps=300, ctc_lr=2e-3, ctc_batch_seconds=40,
                        llm_steps=160, llm_lr=2e-3, llm_batch_seconds=16, grpo_steps=48,
                        grpo_group_size=4, grpo_utterances_per_step=2, grpo_lr=5e-5,
                        rl_utterances=48, hotword_test_utterances=32, grpo_held_out=24,
                        train_utterances=100_000, subset=96, test_utterances=48,
                        online_noise_fraction=0.1, streaming_weight=0.3, max_new_tokens=48),
    "tiny": EffectsPlan(model_size="tiny", ctc_steps=3, ctc_lr=2e-3, ctc_batch_seconds=12,
                        llm_steps=2, llm_lr=2e-3, llm_batch_seconds=12, grpo_steps=2,
                        grpo_group_size=2, grpo_utterances_per_step=2, grpo_lr=1e-4,
                        rl_utterances=4, hotword_test_utterances=2, grpo_held_out=2,
                        train_utterances=5, subset=4, test_utterances=3, hotword_sentences=2,
                        silent_inputs=2, max_new_tokens=8),
}


class EffectsRun:
    """The output folder, seed and plan of one `make effects` run; `commands` lists every
    `funfactory` command line it ran (added to the folder's `commands.sh`, which so lists every
    command the folder's results came from, over reruns that skipped finished work)."""

    def __init__(self, out: Path, plan: EffectsPlan, seed: int = 0):
        self.out = Path(out)
        self.plan = plan
        self.seed = seed
        self.commands: list[str] = []

    def path(self, *parts) -> Path:
        return self.out.joinpath(*(str(p) for p in parts))
