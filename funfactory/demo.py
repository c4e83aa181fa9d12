"""`funfactory demo`: the whole factory on the embedded default corpus, with one report.

Stages run in order; each prints progress, is timed, and leaves a completion marker keyed by its
inputs, so a second run reuses finished work. A stage whose marker holds another key (its recipe,
the package version or an upstream stage's result changed) deletes its output folders and runs
from scratch; a stage killed before its marker resumes its jobs where they stopped. The run ends
with `report.md` (+ `report.json` and PNGs) in the output folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from funfactory import demo_model, demo_stages
from funfactory.demo_report import write_report


@dataclass
class Stage:
    name: str
    run: Callable[[DemoRun], dict]
    describe: str
    outputs: tuple[str, ...] = ()  # folders under the demo's output folder that it writes
    needs_llms: bool = False  # loads a packaged LLM: waits for `LLMConversion`


@dataclass
class StageResult:
    name: str
    seconds: float
    reused: bool
    summary: dict
    commands: list[str] = field(default_factory=list)


@dataclass
class DemoRun:
    out: Path
    seed: int
    scale: str
    results: list[StageResult] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # of the stage now running

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def summary(self, stage: str) -> dict:
        return next(r.summary for r in self.results if r.name == stage)


STAGES = [
    Stage("corpus", demo_stages.corpus, "embedded raw corpus: real TTS voices, real noise",
          ("corpus",)),
    Stage("split", demo_stages.split_by_date, f"training vs test pool by the "
          f"{demo_stages.CUTOFF} publication cutoff", ("split",)),
    Stage("label", demo_stages.label, "VAD + 3 ASR systems + vote + ITN + filters (3.1)",
          ("shards/label",)),
    Stage("augment", demo_stages.augment, "real noise at SNR ~ N(10, 5) dB, noise-only (5.2, 5.6)",
          ("shards/augment",)),
    Stage("streaming", demo_stages.streaming, "720 ms streaming prefixes, aligned text (5.1)",
          ("shards/streaming",)),
    Stage("context", demo_stages.context, "keywords, context pieces, irrelevant mixing (4.3)",
          ("shards/context-llm", "shards/context"), needs_llms=True),
    Stage("codeswitch", demo_stages.codeswitch, "zh-en sentences around English terms, TTS (5.4)",
          ("shards/codeswitch",), needs_llms=True),
    Stage("hotword", demo_stages.hotword, "hotword lists with distractors, noise-only (5.5)",
          ("shards/hotword",)),
    Stage("testset", demo_stages.testset, "cutoff, dedup vs training, export/import (6.1)",
          ("testset", "shards/test")),
    Stage("noisy_test", demo_stages.noisy_test, "test set mixed with held-out test noise",
          ("shards/test-noisy",)),
    Stage("verify", demo_stages.verify, "every shard set against its index"),
    Stage("stats", demo_stages.stats, "hours and counts per dataset, task, language"),
    Stage("speech", demo_stages.speech, "tens of minutes of TTS speech with known text: 5 "
          "training voices, held-out sentences, an unseen voice"),
    Stage("model", demo_stages.model, "the cpu recogniser: Whisper encoder, CTC head, SmolLM2 "
          "reading the CTC hypothesis (2, 4.1, 4.2)",
          tuple(f"runs/{name}" for name, *_ in demo_model.RUNS), needs_llms=True),
    Stage("rl_data", demo_stages.rl_data, "hard, long, hallucination, keyword, regular (4.4.3)",
          ("shards/rl",)),
    Stage("grpo", demo_stages.grpo, "a few GRPO steps on the cpu model, the report's rewards (4.4)",
          ("runs/grpo",)),
    Stage("evaluate", demo_stages.evaluate, "WER/CER per system and condition (6)", ("eval",)),
]


class LLMConversion:
    """The packaged LLMs' one-time conversion from GGUF (Gemma-3 about 30 s, SmolLM2 about 13 s
    on 2 cores, cached in $FUNFACTORY_CACHE) in a background thread. It is mostly Python on one
    core, and the stages before the first that loads an LLM mostly run native code on one core
    (the corpus's TTS engines, the label job's decoders), so the two overlap; such a stage waits
    for it, and gets its error if it failed."""

    def __init__(self, names: tuple[str, ...]):
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._convert, args=(names,), daemon=True,
                                       name="llm-conversion")
        self.thread.start()

    def _convert(self, names: tuple[str, ...]) -> None:
        from funfactory.synth.llm.transformers_backend import packaged_model_dir

        try:
            for name in names:
                packaged_model_dir(name)
        except BaseException as e:  # handed to the stage that needs the model
            self.error = e

    def wait(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


def _marker(run: DemoRun, stage: Stage, index: int) -> tuple[Path, str]:
    from funfactory import __version__

    upstream = [r.summary for r in run.results]
    recipe = Path(demo_stages.__file__).read_bytes()  # a changed stage recipe runs again
    token = hashlib.sha256(json.dumps([__version__, run.seed, run.scale, stage.name, upstream],
                                      sort_keys=True, default=str).encode() + recipe).hexdigest()
    return run.path(".done", f"{index:02d}-{stage.name}.json"), token


def run_demo(out: Path, seed: int = 0, scale: str = "tiny") -> DemoRun:
    from funfactory.synth.llm.transformers_backend import GEMMA3, SMOLLM2

    run = DemoRun(out=out.resolve(), seed=seed, scale=scale)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    conversion = None  # started by the first stage that runs while an LLM stage is ahead
    for i, stage in enumerate(STAGES, 1):
        marker, token = _marker(run, stage, i)
        print(f"[{i}/{len(STAGES)}] {stage.name}: {stage.describe}", flush=True)
        if marker.exists() and json.loads(marker.read_text())["token"] == token:
            saved = json.loads(marker.read_text())
            run.results.append(StageResult(stage.name, 0.0, True, saved["summary"],
                                           saved["commands"]))
            print(f"      reused (finished in an earlier run, {saved['seconds']:.1f} s then)")
            continue
        if marker.exists():  # finished before, under another key: its outputs are stale
            print("      its recipe or inputs changed since it last finished: running it afresh")
            for folder in stage.outputs:
                shutil.rmtree(run.path(*folder.split("/")), ignore_errors=True)
            marker.unlink()
        t0 = time.perf_counter()
        if conversion is None and any(s.needs_llms for s in STAGES[i - 1:]):
            conversion = LLMConversion((GEMMA3, SMOLLM2))
        if stage.needs_llms:
            conversion.wait()
        run.commands = []
        summary = stage.run(run)
        seconds = time.perf_counter() - t0
        run.results.append(StageResult(stage.name, seconds, False, summary, run.commands))
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"token": token, "seconds": seconds, "summary": summary,
                                      "commands": run.commands}, ensure_ascii=False, default=str))
        print(f"      done in {seconds:.1f} s", flush=True)
    total = time.perf_counter() - started
    run.path("commands.sh").write_text(
        "#!/usr/bin/env bash\n# The commands this demo ran, stage by stage.\nset -euo pipefail\n"
        + "".join(f"\n# {r.name}\n" + "".join(c + "\n" for c in r.commands)
                  for r in run.results), encoding="utf-8")
    report = write_report(run, total)
    print(f"demo finished in {total:.1f} s; report: {report}")
    return run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole factory on the embedded default corpus",
                       description=__doc__)
    p.add_argument("--out", default="demo-out", help="output folder (reused by a second run)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", choices=("tiny", "default"), default="tiny",
                   help="corpus size: tiny (about a minute of speech; the default) or "
                        "default (about 7 minutes; a longer run)")
    p.set_defaults(func=lambda args: run_demo(Path(args.out), args.seed, args.scale) and 0)
