"""Runs the effects experiments in order and writes their table, PNGs and the README block.

    python -m funfactory.effects --out effects-out [--plan full|tiny] [--speech FOLDER]
        [--only noise,noise_only,streaming,hotwords,grpo] [--readme README.md]

The CTC-head experiments (noise, noise-only, streaming) come first: they are cheap, because the
frozen encoder's output of every fixed clip is memoised for the whole process. The hotword and
GRPO experiments share one LLM run. After each experiment the table is rewritten, so a run cut
short keeps what finished; a rerun skips every shard set and trainer run that completed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from funfactory.effects import grpo, hotwords, noise, noise_only, report, streaming
from funfactory.effects.data import build_sets, noise_manifest
from funfactory.effects.plan import PLANS, EffectsRun

# The CTC-head pairs that have targets first, then the two that need the LLM, then streaming.
EXPERIMENTS = ("noise", "noise_only", "hotwords", "grpo", "streaming")


def speech_folder(run: EffectsRun) -> Path:
    """The demo's TTS speech (train / heldout / unseen-voice shard sets), built once and cached."""
    from funfactory.demo_speech import build_speech, plan_speech

    return build_speech(plan_speech(run.seed, []))


def run_effects(run: EffectsRun, speech: Path | None = None, only=EXPERIMENTS,
                readme: Path | None = None) -> list[dict]:
    started = time.monotonic()
    run.out.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        print(f"[effects {time.monotonic() - started:7.1f}s] {text}", flush=True)

    say("speech with known text")
    speech = speech or speech_folder(run)
    say(f"shard sets from {speech}")
    modules = {"noise": noise, "noise_only": noise_only, "streaming": streaming,
               "hotwords": hotwords, "grpo": grpo}
    sets = build_sets(run, speech, dict.fromkeys(n for e in only for n in modules[e].SETS))
    manifest = noise_manifest(run)
    plan = run.plan
    header = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "plan": next(k for k, v in PLANS.items() if v == plan), "model_size": plan.model_size,
              "seed": run.seed, "cores": os.cpu_count(), "speech": str(speech),
              "steps": f"CTC {plan.ctc_steps}, LLM {plan.llm_steps}, GRPO {plan.grpo_steps}"}
    rows: list[dict] = []
    ctc: dict = {}
    llm = None

    def step(name: str, work) -> None:
        say(f"{name}: training and scoring")
        try:
            rows.append({"key": name, **work()})
        except Exception as e:  # recorded in the table and in the exit code, not swallowed
            rows.append({"key": name, "experiment": name, "section": "",
                         "error": f"{type(e).__name__}: {e}"})
            say(f"{name} failed: {type(e).__name__}: {e}")
        header["wall_minutes"] = round((time.monotonic() - started) / 60, 1)
        table = report.write(run.out, report.merged(run.out, rows, EXPERIMENTS), header,
                             EXPERIMENTS)
        if readme is not None:
            report.update_readme(readme, table)
        say(f"{name} done:\n{table}")

    def noise_pair():
        ctc.update(noise.runs(run, sets, manifest))
        return noise.score(ctc, sets)

    def noise_only_pair():
        if "noisy" not in ctc:
            ctc.update(noise.runs(run, sets, manifest))
        models = noise_only.runs(run, sets, manifest, ctc)
        ctc["noise_only"] = models["with"]
        return noise_only.score(models, sets)

    def streaming_pair():
        if "clean" not in ctc:
            ctc.update(noise.runs(run, sets, manifest))
        return streaming.score(streaming.runs(run, sets, ctc), sets)

    def llm_model():
        nonlocal llm
        if llm is None:
            if "noise_only" not in ctc:
                ctc.update(noise.runs(run, sets, manifest))
                ctc["noise_only"] = noise_only.runs(run, sets, manifest, ctc)["with"]
            llm = hotwords.train(run, sets, ctc["noise_only"])
        return llm

    def hotword_pair():
        return hotwords.score(run, llm_model(), sets)

    def grpo_pair():
        return grpo.score(run, grpo.train(run, sets, llm_model()), sets)

    work = {"noise": noise_pair, "noise_only": noise_only_pair, "streaming": streaming_pair,
            "hotwords": hotword_pair, "grpo": grpo_pair}
    for name in only:
        step(name, work[name])
    # a rerun skips finished work: the file keeps the earlier runs' commands and adds this one's
    listed = run.path("commands.sh")
    before = listed.read_text(encoding="utf-8").splitlines() if listed.is_file() else []
    listed.write_text("\n".join(before + [c for c in run.commands if c not in before]) + "\n",
                      encoding="utf-8")
    say(f"wrote {run.path('effects.md')}, {run.path('effects.json')}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m funfactory.effects",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="effects-out", help="output folder")
    parser.add_argument("--plan", choices=sorted(PLANS), default="full",
                        help="run size: `full` (make effects) or `tiny` (the tests' smoke run)")
    parser.add_argument("--speech", help="a folder with train/ and heldout/ shard sets "
                                         "(default: the demo's TTS speech, cached); the hotword "
                                         "sets always read the hotword pool's cached speech")
    parser.add_argument("--only", default=",".join(EXPERIMENTS),
                        help=f"comma-separated experiments among {','.join(EXPERIMENTS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--readme", help="README to update between the effects markers")
    args = parser.parse_args(argv)
    only = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(only) - set(EXPERIMENTS))
    if unknown:
        parser.error(f"unknown experiments {unknown}; choose among {', '.join(EXPERIMENTS)}")
    import torch

    torch.set_num_threads(2)
    run = EffectsRun(Path(args.out), PLANS[args.plan], args.seed)
    rows = run_effects(run, Path(args.speech) if args.speech else None, only,
                       Path(args.readme) if args.readme else None)
    print(json.dumps([{k: r.get(k) for k in ("experiment", "baseline", "treatment", "met",
                                              "error")} for r in rows]))
    return 1 if any("error" in r for r in rows) else 0
