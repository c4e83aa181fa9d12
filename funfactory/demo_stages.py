"""The demo's stages: the whole factory, each stage one `funfactory` command a user could type.

Every stage runs its command line through the real CLI (recorded in `commands.sh`, so the run
can be replayed by hand) and returns a summary read from the reports the command wrote. The
order follows the report: labelling (3.1), augmentation and noise-only samples (5.2, 5.6),
simulated streaming (5.1), contextual, code-switched and hotword data (4.3, 5.4, 5.5), a
leakage-free test set (6.1), the `cpu` recogniser trained on TTS speech and the label job's output
(2, 4.1, 4.2), RL data and GRPO on it (4.4), and evaluation (6).
"""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path


from funfactory.errors import FunfactoryError

# Recordings published after this date are the test pool (section 6.1); the rest are training.
CUTOFF = "2025-06-01"

def cli(run, *argv: str) -> None:
    """Run one `funfactory` command in this process; the demo lists it in commands.sh. Commands
    may set torch's thread count for their workers (a Beam worker decodes on one thread): it is
    set back afterwards, so each command starts as it would in a process of its own."""
    import torch

    from funfactory.cli import main

    line = "funfactory " + " ".join(shlex.quote(str(a)) for a in argv)
    print(f"      $ {line}", flush=True)
    run.commands.append(line)
    threads = torch.get_num_threads()
    try:
        code = main([str(a) for a in argv])
    finally:
        torch.set_num_threads(threads)
    if code:
        raise FunfactoryError(f"stage command failed with exit code {code}: {line}")


def _report(folder: Path, name: str) -> dict:
    path = folder / "_reports" / name
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _pick(report: dict, *keys: str) -> dict:
    return {k: report[k] for k in keys if k in report}


def corpus(run) -> dict:
    cli(run, "synth", "corpus", "--out", run.path("corpus"), "--seed", run.seed,
        "--scale", run.scale)
    summary = json.loads(run.path("corpus", "corpus.json").read_text(encoding="utf-8"))
    return {"counts": summary["counts"], "hours": summary["hours"]}


def split_by_date(run) -> dict:
    """Training manifest (published up to the cutoff, or undated) and the test pool (every
    utterance, for `testset build` to apply the cutoff itself and report the undated ones)."""
    root = run.path("corpus")
    records = [json.loads(line) for line in
               (root / "manifest.jsonl").read_text(encoding="utf-8").splitlines() if line]
    train = [r for r in records if not r.get("published_at") or r["published_at"] <= CUTOFF]
    out = run.path("split")
    out.mkdir(parents=True, exist_ok=True)
    with (out / "train.jsonl").open("w", encoding="utf-8") as f:
        for r in train:
            f.write(json.dumps({**r, "uri": str(root / r["uri"])}, ensure_ascii=False) + "\n")
    with (out / "pool.jsonl").open("w", encoding="utf-8") as f:
        for r in records:
            for i, u in enumerate(r["utterances"]):
                f.write(json.dumps({"id": f"{r['id']}-u{i:02d}", "audio": str(root / r["uri"]),
                                    "start": u["start"], "end": u["end"],
                                    "language": u.get("language", r["language"]),
                                    "published_at": r.get("published_at")},
                                   ensure_ascii=False) + "\n")
    return {"cutoff": CUTOFF, "training_recordings": len(train),
            "pool_recordings": len(records) - len(train),
            "undated_recordings_used_for_training":
                sum(1 for r in records if not r.get("published_at"))}


def label(run) -> dict:
    out = run.path("shards", "label")
    cli(run, "pipeline", "label", "run", run.path("split", "train.jsonl"), out)
    report = _report(out, "label-report.json")
    return {**_pick(report, "units", "units_rejected", "samples", "hours_in", "hours_out",
                    "rejects", "rejects_by_reason", "stage_seconds", "shards", "wall_seconds"),
            "chosen_by_system": report.get("extra", {}).get("chosen_by_system"),
            "vote_by_language": report.get("extra", {}).get("estimated_wer"),
            "job_reliability": report.get("extra", {}).get("reliability"),
            "label_quality": label_quality(out),
            "png": str((out / "_reports" / "label-durations.png").relative_to(run.out))}


def label_quality(shards: Path) -> dict:
    """Error rate of each pseudo-label system and of the vote against the corpus's known text."""
    from funfactory.eval.scoring import score
    from funfactory.shards.reader import ShardReader

    by_language: dict[str, dict[str, list]] = {}
    for sample in ShardReader(shards, decode=False):
        meta = sample.meta
        reference = meta.get("reference")
        if not reference:
            continue
        systems = by_language.setdefault(meta["language"], {})
        systems.setdefault("vote (chosen)", []).append((reference, meta["text"]))
        for name, hyp in (meta.get("labels") or {}).items():
            if isinstance(hyp, dict) and "text" in hyp:
                systems.setdefault(name, []).append((reference, hyp["text"]))
    table = {}
    for language, systems in sorted(by_language.items()):
        table[language] = {}
        for name, pairs in sorted(systems.items()):
            result = score([r for r, _ in pairs], [h for _, h in pairs], language=language)
            table[language][name] = {"metric": result.metric, "rate": round(result.rate, 4),
                                     "segments": len(pairs)}
    return table


def augment(run) -> dict:
    out = run.path("shards", "augment")
    cli(run, "pipeline", "augment", "run", "--set",
        f"noise.sources=manifest:{run.path('corpus', 'noise', 'manifest.jsonl')}",
        "--set", "noise_only.share=0.2", "--set", f"seed={run.seed}",
        run.path("shards", "label"), out)
    summary = _report(out, "augment-summary.json")
    return {**summary, **_pick(_report(out, "augment-report.json"), "rejects_by_reason"), "png": str((out / "_reports" / "snr-histogram.png").relative_to(run.out)),
            "spectrograms": str((out / "_reports" / "spectrograms.png").relative_to(run.out))}


def streaming(run) -> dict:
    out = run.path("shards", "streaming")
    cli(run, "pipeline", "streaming", "run", run.path("shards", "label"), out)
    return {**_report(out, "streaming-summary.json"),
            **_pick(_report(out, "streaming-report.json"), "rejects_by_reason")}


def context(run) -> dict:
    """Contextual data twice: the LLM path on one recording (the packaged LLM is slow and weak on
    CPU, so its yield is shown on a sample) and keyword retrieval on everything."""
    llm_out, retrieval_out = run.path("shards", "context-llm"), run.path("shards", "context")
    cli(run, "pipeline", "context", "run", "--shards", run.path("shards", "label"),
        "--set", "generators=llm", "--set", "limit_units=1", llm_out)
    cli(run, "pipeline", "context", "run", "--shards", run.path("shards", "label"),
        "--set", "generators=retrieval-keyword", retrieval_out)
    return {"llm": _report(llm_out, "context-report.json"),
            "retrieval": _report(retrieval_out, "context-report.json")}


def codeswitch(run) -> dict:
    out = run.path("shards", "codeswitch")
    cli(run, "pipeline", "codeswitch", "run", "--set", "samples=6", "--set",
        f"seed={run.seed}", out)
    return _report(out, "codeswitch-report.json")


def hotword(run) -> dict:
    out = run.path("shards", "hotword")
    cli(run, "pipeline", "hotword", "run", "--shards", run.path("shards", "label"),
        "--set", f"corpus_scale={run.scale}", "--set", f"corpus_seed={run.seed}", out)
    return _report(out, "hotword-report.json")


def testset(run) -> dict:
    """Section 6.1: cutoff, dedup against the training shards, export for transcription; the
    corpus's reference text stands in for the human transcriber; import as test shards."""
    out = run.path("testset")
    cli(run, "testset", "build", "--pool", run.path("split", "pool.jsonl"), "--train",
        run.path("shards", "label"), "--cutoff", CUTOFF, "--out", out)
    references = {}
    root = run.path("corpus")
    for line in (root / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        for i, u in enumerate(record["utterances"]):
            references[f"{record['id']}-u{i:02d}"] = u["text"]
    with (out / "transcription.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise FunfactoryError(f"the test pool kept nothing after the {CUTOFF} cutoff")
    filled = out / "transcription-filled.csv"
    with filled.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "text": references[row["id"]]})
    cli(run, "testset", "import", "--transcripts", filled, "--out", run.path("shards", "test"),
        "--dataset", "test")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return {k: v for k, v in report.items() if not isinstance(v, list) or len(v) < 20}


def noisy_test(run) -> dict:
    """The test set mixed with held-out test noise: the 'noisy' evaluation condition."""
    out = run.path("shards", "test-noisy")
    cli(run, "pipeline", "augment", "run", "--set",
        f"noise.sources=manifest:{run.path('corpus', 'noise', 'manifest.jsonl')}",
        "--set", "noise.split=test", "--set", "noise_only.share=0", "--set", "dataset=testnoisy",
        "--set", "split=test", "--set", f"seed={run.seed + 1}", run.path("shards", "test"), out)
    return _report(out, "augment-summary.json")


def verify(run) -> dict:
    from funfactory.shards.verify import verify as verify_folder

    results = {}
    for folder in _shard_sets(run):
        cli(run, "shards", "verify", folder)
        report = verify_folder(folder)
        results[folder.name] = {"shards": report.shards, "samples": report.samples}
    return results


def stats(run) -> dict:
    from funfactory.shards.stats import compute_stats, duration_histogram

    results = {}
    for folder in _shard_sets(run):
        s = compute_stats(folder)
        png = duration_histogram(s, run.path("report", f"durations-{folder.name}.png"),
                                 title=folder.name)
        results[folder.name] = {"samples": s.samples, "hours": round(s.hours, 4),
                                "by_task": {k: v[0] for k, v in s.by["task"].items()},
                                "by_language": {k: v[0] for k, v in s.by["language"].items()},
                                "png": str(png.relative_to(run.out))}
    return results


def _shard_sets(run) -> list[Path]:
    return sorted(p for p in run.path("shards").iterdir()
                  if p.is_dir() and any(p.glob("*.parquet")))


def speech(run) -> dict:
    """Tens of minutes of TTS speech with known text for the model (funfactory.demo_speech)."""
    from funfactory.demo_speech import build_speech, plan_speech

    corpus_texts = [u["text"] for line in
                    run.path("corpus", "manifest.jsonl").read_text(encoding="utf-8").splitlines()
                    if line for u in json.loads(line)["utterances"]]
    folder = build_speech(plan_speech(run.seed, corpus_texts))
    return {"folder": str(folder),
            **json.loads((folder / "summary.json").read_text(encoding="utf-8"))}


def model(run) -> dict:
    """The `cpu` recogniser: CTC head, then adaptor + LLM LoRA reading the CTC hypothesis."""
    from funfactory import demo_model

    speech_dir = Path(run.summary("speech")["folder"])
    results, init = {}, None
    for name, stage, steps, lr, every, seconds in demo_model.RUNS:
        config = demo_model.train_config(run, speech_dir, name, stage, steps, lr, every, seconds,
                                         init)
        cli(run, "train", "sft", "--config", config)
        init = run.path("runs", name, "final")
        results[name] = {"stage": stage, "steps": steps, **_last_validation(run.path("runs", name))}
    png = demo_model.curves_png(run, [name for name, *_ in demo_model.RUNS],
                                run.path("report", "model-validation.png"))
    final = demo_model.score_final(init, {
        "held-out sentences, training voices": speech_dir / "heldout",
        "held-out sentences, unseen voice": speech_dir / "unseen-voice"})
    return {"runs": results, "final_model": str(init), "final": final,
            "png": str(png.relative_to(run.out))}


def _last_validation(run_dir: Path) -> dict:
    from funfactory.training.trainer import read_metrics

    rows = read_metrics(run_dir)
    losses = [r["loss"] for r in rows if "loss" in r]
    val = [r for r in rows if any(k.startswith("val") for k in r)]
    out = {"first_loss": round(losses[0], 4) if losses else None,
           "last_loss": round(losses[-1], 4) if losses else None}
    if val:
        out["validation"] = {k: v for k, v in val[-1].items() if k.startswith("val")}
    return out


def rl_data(run) -> dict:
    out = run.path("shards", "rl")
    cli(run, "pipeline", "rl", "run", "--model", run.summary("model")["final_model"],
        run.path("shards", "label"), out)
    return _report(out, "rl-selection.json")


def grpo(run) -> dict:
    out = run.path("runs", "grpo")
    cli(run, "train", "grpo", "--set", "steps=3", "--set", "group_size=4", "--set",
        "utterances_per_step=2", "--set", "save_every=3", "--set", f"seed={run.seed}",
        run.summary("model")["final_model"], run.path("shards", "rl"), out)
    log = [json.loads(line) for line in
           (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if line]
    keep = ("step", "reward_mean", "kl", "clip_fraction", "response_length", "time")
    return {"steps": [{k: v for k, v in row.items() if k.split("/")[0] in keep or
                       k.startswith("reward") or k.startswith("time")} for row in log]}


def evaluate(run) -> dict:
    """Section 6: the model after SFT and after GRPO, and Whisper base, on the clean and noisy
    test sets (what the model learned shows in the model stage's held-out figures)."""
    sft_model = run.summary("model")["final_model"]
    grpo_model = run.path("runs", "grpo", "final")
    out = run.path("eval")
    systems = [(f"model:{sft_model}", "cpu-sft"), (f"model:{grpo_model}", "cpu-grpo"),
               ("backend:whisper-base", "whisper-base")]
    for spec, name in systems:
        for shards, condition in (("test", "clean"), ("test-noisy", "noisy")):
            cli(run, "eval", "run", "--system", spec, "--name", name, "--batch-size", "16",
                "--test", run.path("shards", shards),
                "--test-set", "demo-test", "--condition", condition, "--out", out / "results")
    cli(run, "eval", "report", "--results", out / "results", "--out", out / "report")
    tables = sorted((out / "report").glob("*.md"))
    return {"tables": [str(t.relative_to(run.out)) for t in tables],
            "pngs": [str(p.relative_to(run.out)) for p in sorted((out / "report").glob("*.png"))],
            "markdown": "\n\n".join(t.read_text(encoding="utf-8") for t in tables)}
