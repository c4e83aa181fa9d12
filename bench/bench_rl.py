"""GRPO step time by phase for the `tiny` model on CPU (Fun-ASR section 4.4.1).

The report's FunRL runs a step at RTF 0.015 (a step's seconds over the seconds of audio it covers)
on 8 A100s. Here: one process, the transformers rollout engine, 4 utterances of 5 s of TTS speech,
G = 4 samples each, 24 new tokens at most, run by `run_grpo` (the trainer's loop over RL shards);
the first step (warm-up) is left out. Printed beside each phase is the step's total, which also
holds the backward pass and optimiser step; the RTF
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
    from funfactory.model.checkpoint import save_model
    from funfactory.model.configs import model_config
    from funfactory.model.decode import DecodeOptions, transcribe
    from funfactory.model.tiny_llm import cached_tiny_llm
    from funfactory.shards.schema import new_meta
    from funfactory.shards.writer import ShardWriter
    from funfactory.training.grpo import PHASES, GRPOConfig, run_grpo
    from funfactory.training.trainer import read_metrics

    torch.set_num_threads(1)
    clips = speech_clips(UTTERANCES, SECONDS)
    texts = ["the quarterly budget review starts at nine tomorrow"] * UTTERANCES
    model = FunASRModel.build(model_config("tiny", ctc_weight=0.0), cached_tiny_llm(), texts)
    config = GRPOConfig(group_size=GROUP, utterances_per_step=UTTERANCES,
                        max_new_tokens=NEW_TOKENS, save_every=0, steps=STEPS + 1)
    with tempfile.TemporaryDirectory() as out:
        init = save_model(model, f"{out}/init")
        with ShardWriter(f"{out}/rl", "rl", "train") as writer:
            for i, (clip, text) in enumerate(zip(clips, texts)):
                writer.write(new_meta(key=f"u{i}", text=text, language="en",
                                      duration=len(clip) / 16000, task="asr", source_id=f"u{i}",
                                      uri=f"file:///u{i}.wav", pipeline="bench", version="0",
                                      config_sha256=""), clip.astype(np.float32))
        run_grpo(init, f"{out}/rl", f"{out}/run", config)
        records = [r for r in read_metrics(f"{out}/run") if "reward" in r][1:]
    mean = {p: float(np.mean([r[f"time_{p}"] for r in records])) for p in PHASES}
    step = float(np.mean([1.0 / r["steps_per_s"] for r in records]))
    audio = UTTERANCES * SECONDS
    tokens = float(np.mean([r["response_length"] for r in records]))
    options = DecodeOptions(max_new_tokens=NEW_TOKENS)
    import time

    start = time.perf_counter()
    transcribe(model, clips, options)
    decode_rtf = (time.perf_counter() - start) / audio
    rows = [row("rl", f"tiny GRPO step, {p} (s)", mean[p], "tiny GRPO step total (s)", step, "s")
            for p in PHASES]
    rows.append(row("rl", f"tiny GRPO step RTF (CPU, G={GROUP}, {tokens:.0f} tok)", step / audio,
                    "Fun-ASR report FunRL RTF, 8 A100 (published)", REPORT_RTF_8xA100))
    rows.append(row("rl", "tiny GRPO step RTF (CPU)", step / audio,
                    "tiny greedy LLM decode RTF, same batch", decode_rtf))
    return rows


if __name__ == "__main__":
    main()
