"""`funfactory demo`: the whole factory on the embedded default corpus, with one report.

Stages run in order; each prints progress, is timed, and leaves a completion marker keyed by its
inputs, so a second run reuses finished work. The run ends with `report.md` (+ `report.json`
and PNGs) in the output folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    name: str
    run: Callable[[DemoRun], dict]
    describe: str


@dataclass
class StageResult:
    name: str
    seconds: float
    reused: bool
    summary: dict


@dataclass
class DemoRun:
    out: Path
    seed: int
    scale: str
    results: list[StageResult] = field(default_factory=list)

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def summary(self, stage: str) -> dict:
        return next(r.summary for r in self.results if r.name == stage)


def _corpus(run: DemoRun) -> dict:
    from funfactory.synth.corpus import build_corpus

    info = build_corpus(run.path("corpus"), seed=run.seed, scale=run.scale)
    return {"folder": str(info.root), **info.counts, "hours": info.hours}


def _reference_shards(run: DemoRun) -> dict:
    from funfactory.pipelines.reference import write_reference_shards

    out = run.path("shards", "reference")
    if out.exists():
        shutil.rmtree(out)
    shards = write_reference_shards(run.path("corpus"), out)
    return {"shards": len(shards), "folder": str(out)}


def _verify(run: DemoRun) -> dict:
    from funfactory.errors import FunfactoryError
    from funfactory.shards.verify import verify

    results = {}
    for folder in sorted(p for p in run.path("shards").iterdir() if p.is_dir()):
        report = verify(folder)
        for problem in report.problems:
            print(f"  PROBLEM {folder.name}: {problem}")
        if not report.ok:
            raise FunfactoryError(f"shard set {folder} failed verification: {report.by_reason()}")
        results[folder.name] = {"shards": report.shards, "samples": report.samples}
    return results


def _stats(run: DemoRun) -> dict:
    from funfactory.shards.stats import compute_stats, duration_histogram

    results = {}
    for folder in sorted(p for p in run.path("shards").iterdir() if p.is_dir()):
        stats = compute_stats(folder)
        png = duration_histogram(stats, run.path("report", f"durations-{folder.name}.png"),
                                 title=folder.name)
        print(stats.table())
        results[folder.name] = {"samples": stats.samples, "hours": round(stats.hours, 4),
                                "by_task": {k: v[0] for k, v in stats.by["task"].items()},
                                "by_language": {k: v[0] for k, v in stats.by["language"].items()},
                                "png": str(png.relative_to(run.out))}
    return results


STAGES = [
    Stage("corpus", _corpus, "build the embedded raw corpus with real TTS voices and real noise"),
    Stage("reference_shards", _reference_shards, "cut the known utterances into a gold shard set"),
    Stage("verify", _verify, "verify every shard set against its index"),
    Stage("stats", _stats, "hours and counts per dataset, task, language; duration PNGs"),
]


def _marker(run: DemoRun, stage: Stage, index: int) -> tuple[Path, str]:
    from funfactory import __version__

    upstream = [r.summary for r in run.results]
    token = hashlib.sha256(json.dumps([__version__, run.seed, run.scale, stage.name, upstream],
                                      sort_keys=True, default=str).encode()).hexdigest()
    return run.path(".done", f"{index:02d}-{stage.name}.json"), token


def run_demo(out: Path, seed: int = 0, scale: str = "default") -> DemoRun:
    run = DemoRun(out=out, seed=seed, scale=scale)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for i, stage in enumerate(STAGES, 1):
        marker, token = _marker(run, stage, i)
        print(f"[{i}/{len(STAGES)}] {stage.name}: {stage.describe}", flush=True)
        if marker.exists() and json.loads(marker.read_text())["token"] == token:
            saved = json.loads(marker.read_text())
            run.results.append(StageResult(stage.name, 0.0, True, saved["summary"]))
            print(f"      reused (finished in an earlier run, {saved['seconds']:.1f} s then)")
            continue
        t0 = time.perf_counter()
        summary = stage.run(run)
        seconds = time.perf_counter() - t0
        run.results.append(StageResult(stage.name, seconds, False, summary))
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"token": token, "seconds": seconds, "summary": summary},
                                     ensure_ascii=False, default=str))
        print(f"      done in {seconds:.1f} s", flush=True)
    total = time.perf_counter() - started
    report = write_report(run, total)
    print(f"demo finished in {total:.1f} s; report: {report}")
    return run


def write_report(run: DemoRun, total: float) -> Path:
    folder = run.path("report")
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# funfactory demo report", "",
             f"Seed {run.seed}, corpus scale `{run.scale}`, total {total:.1f} s "
             "(stages marked reused finished in an earlier run).", "",
             "## Time per stage", "", "| stage | seconds | reused |", "| --- | ---: | --- |"]
    lines += [f"| {r.name} | {r.seconds:.1f} | {'yes' if r.reused else ''} |"
              for r in run.results]
    for r in run.results:
        lines += ["", f"## {r.name}", "", "```json",
                  json.dumps(r.summary, ensure_ascii=False, indent=2, default=str), "```"]
        for png in _pngs(r.summary):
            lines += ["", f"![{Path(png).stem}](../{png})"]
    report = folder / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "report.json").write_text(json.dumps(
        {"total_seconds": total, "stages": [vars(r) for r in run.results]},
        ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return report


def _pngs(summary) -> list[str]:
    if isinstance(summary, dict):
        return [p for k, v in summary.items() for p in
                ([v] if k == "png" and isinstance(v, str) else _pngs(v))]
    return []


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole factory on the embedded default corpus",
                       description=__doc__)
    p.add_argument("--out", default="demo-out", help="output folder (reused by a second run)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", choices=("tiny", "default"), default="default",
                   help="corpus size: tiny (about a minute of speech) or default")
    p.set_defaults(func=lambda args: run_demo(Path(args.out), args.seed, args.scale) and 0)
