"""GRPO step time by phase for the `tiny` model on CPU (Fun-ASR section 4.4.1).

The report's FunRL runs a step at RTF 0.015 (a step's seconds over the seconds of audio it covers)
on 8 A100s. Here: one process, the transformers rollout engine, 4 utterances of 5 s of TTS speech,
G = 4 samples each, 24 new tokens at most. Printed beside each phase is the step's total; the RTF
row stands beside the report's figure (a published number, not measured here) and beside a
same-run anchor, the greedy LLM decode of the same batch. No GPU was lent for this measurement.
"""

from __future__ import annotations

import tempfile

import numpy as np
import torch

from bench.common import row, speech_clips

REPORT_RTF_8xA100 = 0.015
UTTERANCES, GROUP, SECONDS, NEW_TOKENS, STEPS = 4, 4, 5.0, 24, 3


def main() -> list[dict]:
    from funfactory.model.asr import FunASRModel
    from funfactory.model.configs import model_config
    from funfactory.model.decode import DecodeOptions, transcribe
    from funfactory.model.tiny_llm import cached_tiny_llm
    from funfactory.training.grpo import GRPOConfig, GRPOTrainer, RLUtterance

    torch.set_num_threads(1)
    clips = speech_clips(UTTERANCES, SECONDS)
    texts = ["the quarterly budget review starts at nine tomorrow"] * UTTERANCES
    model = FunASRModel.build(model_config("tiny", ctc_weight=0.0), cached_tiny_llm(), texts)
    utterances = [RLUtterance(f"u{i}", c.astype(np.float32), t, "en")
                  for i, (c, t) in enumerate(zip(clips, texts))]
    config = GRPOConfig(group_size=GROUP, utterances_per_step=UTTERANCES,
                        max_new_tokens=NEW_TOKENS, save_every=0)
    with tempfile.TemporaryDirectory() as out:
        trainer = GRPOTrainer(model, config, out)
        trainer.train_step(utterances)  # warm-up: first-call allocations, ITN grammar load
        records = [trainer.train_step(utterances) for _ in range(STEPS)]
    phases = ("encode", "rollout", "reward", "update", "weight_sync")
    mean = {p: float(np.mean([r[f"time_{p}"] for r in records])) for p in phases}
    step = float(np.mean([r["time_step"] for r in records]))
    audio = UTTERANCES * SECONDS
    tokens = float(np.mean([r["response_length"] for r in records]))
    options = DecodeOptions(max_new_tokens=NEW_TOKENS)
    import time

    start = time.perf_counter()
    transcribe(model, clips, options)
    decode_rtf = (time.perf_counter() - start) / audio
    rows = [row("rl", f"tiny GRPO step, {p} (s)", mean[p], "tiny GRPO step total (s)", step, "s")
            for p in phases]
    rows.append(row("rl", f"tiny GRPO step RTF (CPU, G={GROUP}, {tokens:.0f} tok)", step / audio,
                    "Fun-ASR report FunRL RTF, 8 A100 (published)", REPORT_RTF_8xA100))
    rows.append(row("rl", "tiny GRPO step RTF (CPU)", step / audio,
                    "tiny greedy LLM decode RTF, same batch", decode_rtf))
    return rows


if __name__ == "__main__":
    main()
