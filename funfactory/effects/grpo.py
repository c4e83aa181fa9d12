"""GRPO (Fun-ASR report section 4.4, Table 8): the SFT model against SFT + GRPO.

The RL set is what `funfactory pipeline rl run --model SFT` selects (hard, long, hallucination,
keyword and regular samples in equal shares, judged by the SFT model's own greedy output) from the
`rl-source` candidates (`effects.data`): hotword training utterances with their hotword lists
(keyword), noise-only inputs with distractor-only lists (keyword, or hallucination where the SFT
model writes on them), plain training utterances and noise-only samples without a list (regular,
or hallucination). Every present subset keeps as many samples as the smallest present one, so each
kind of candidate comes in dozens. `funfactory train grpo` then runs the plan's steps with the four
rewards (R1 = 1 - WER, R2 keyword accuracy and recall, R3 hallucination penalty, R4 language
match). Both models decode the same held-out RL set greedily: hotword test utterances (their true
hotwords are R2's keywords) and the noisy test set's noise-only inputs (test noise), scored by the
same rewards.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from funfactory.demo_stages import cli
from funfactory.effects import decoding, hotwords

SECTION = "4.4, Table 8"
SETS = hotwords.SETS + ("rl-source",)


def train(run, sets: dict, sft: Path) -> dict:
    plan = run.plan
    source = sets["rl-source"]
    rl = run.path("shards", "rl")
    if not any(rl.glob("*.parquet")):
        cli(run, "pipeline", "rl", "run", "--model", sft, "--set",
            f"max_new_tokens={plan.max_new_tokens}", "--set", f"seed={run.seed}", source, rl)
    config = run.path("configs", "grpo.yaml")
    config.write_text(yaml.safe_dump({
        "group_size": plan.grpo_group_size, "utterances_per_step": plan.grpo_utterances_per_step,
        "steps": plan.grpo_steps, "learning_rate": plan.grpo_lr, "kl_beta": 0.04,
        "max_new_tokens": plan.max_new_tokens, "temperature": 1.0, "save_every": plan.grpo_steps,
        "trainable": ["llm"], "seed": run.seed}, sort_keys=False), encoding="utf-8")
    out = run.path("runs", "grpo")
    if not (out / "final").is_dir():
        cli(run, "train", "grpo", "--config", config, sft, rl, out)
    return {"sft": sft, "grpo": out / "final", "rl_set": rl}


def held_out(sets: dict, count: int) -> list:
    """`count` hotword test utterances and a third as many noise-only test inputs, at even
    strides (every voice and noise collection)."""
    from funfactory.training.grpo import RLUtterance

    samples = (decoding.even(decoding.read_set(sets["hotword-test"],
                                               lambda m: m["task"] == "hotword"), count)
               + decoding.even(decoding.read_set(sets["noisy-test"], decoding.is_noise_only),
                               max(1, count // 3)))
    utterances = []
    for s in samples:
        u = RLUtterance.from_sample(s.key, s.meta, s.audio)
        if s.meta.get("hotword"):
            u.keywords = [h["text"] for h in s.meta["hotword"]["true"]] or None
        utterances.append(u)
    return utterances


def score(run, models: dict, sets: dict) -> dict:
    from funfactory.eval.scoring import score as corpus_score
    from funfactory.model.checkpoint import load_model
    from funfactory.training.grpo import evaluate_rollouts
    from funfactory.training.rollout import SamplingConfig, TransformersRollout
    from funfactory.training.trainer import read_metrics

    utterances = held_out(sets, run.plan.grpo_held_out)
    speech = [i for i, u in enumerate(utterances) if u.reference.strip()]
    out = {}
    for name in ("sft", "grpo"):
        model = load_model(models[name])
        engine = TransformersRollout(model.llm, model.tokenizer)
        summary, texts = evaluate_rollouts(
            model, engine, utterances,
            SamplingConfig(greedy=True, max_new_tokens=run.plan.max_new_tokens))
        out[name] = {**{k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()},
                     "wer": round(corpus_score([utterances[i].reference for i in speech],
                                               [texts[i] for i in speech], language="en",
                                               metric="wer").rate, 4),
                     "examples": [{"reference": utterances[i].reference, "hypothesis": texts[i]}
                                  for i in speech[:3]]}
    rows = [r for r in read_metrics(models["grpo"].parent) if "reward" in r]
    selection = json.loads((models["rl_set"] / "_reports" / "rl-selection.json").read_text(
        encoding="utf-8"))
    base, treat = out["sft"]["reward"], out["grpo"]["reward"]
    wer_ok = out["grpo"]["wer"] <= out["sft"]["wer"]
    return {"experiment": "GRPO", "section": SECTION,
            "metric": "mean held-out reward, greedy (WER in the detail)",
            "baseline_name": "SFT", "treatment_name": f"SFT + {len(rows)} GRPO steps",
            "baseline": base, "treatment": treat, "change": f"{treat - base:+.4f}",
            "target": "reward higher, WER no worse", "met": treat > base and wer_ok,
            "utterances": {"held-out RL set": len(utterances), "with speech": len(speech),
                           "RL candidates": sum(selection["candidates"].values()),
                           "RL training set": len(decoding.read_set(models["rl_set"])),
                           "GRPO steps": len(rows),
                           "rollouts per step": run.plan.grpo_group_size
                           * run.plan.grpo_utterances_per_step},
            "detail": {**out, "rl_selection": {k: selection[k] for k in ("candidates", "kept")},
                       "train_reward_first_last": [round(rows[0]["reward"], 4),
                                                          round(rows[-1]["reward"], 4)] if rows
                       else None}}
