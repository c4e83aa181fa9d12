"""The demo's one report: `report/report.md` (+ `report.json`), every section from real runs."""

from __future__ import annotations

import json
from pathlib import Path


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _image(run, relative: str | None, title: str) -> list[str]:
    return [f"![{title}](../{relative})", ""] if relative and (run.out / relative).exists() else []


def _vote_table(quality: dict, votes: dict) -> list[str]:
    """Yield of the estimated-error keep rule per language: kept of voted, the kept labels' mean
    estimated error and their error measured against the known text."""
    rows = []
    for language, v in sorted(votes.items()):
        voted = v["kept"] + v["rejected_by_vote"]
        measured = quality.get(language, {}).get("vote (chosen)")
        rows.append([language, f"{v['kept']} / {voted}",
                     f"{100 * v['kept'] / voted:.0f} %" if voted else "",
                     "" if v["mean_estimated_wer_kept"] is None
                     else f"{100 * v['mean_estimated_wer_kept']:.1f} %",
                     f"{100 * measured['rate']:.1f} %" if measured else ""])
    if not rows:
        return []
    return ["Keep rule: a label is kept when its estimated error rate is at most its language's "
            "threshold (fitted on the calibration set, or `vote.max_estimated_wer` where set).",
            ""] + _table(
        ["language", "kept / voted", "yield", "estimated error (kept)",
         "measured error (kept)"], rows)


def _reliability_table(quality: dict, reliability: dict) -> list[str]:
    """The label job's estimate of each system's error rate (from agreement alone, before the
    vote) beside the rate measured against the known text."""
    rows = []
    for language, systems in sorted(reliability.items()):
        for system, figures in sorted(systems.items()):
            measured = quality.get(language, {}).get(system)
            estimated = figures.get("estimated_error")
            rows.append([language, system,
                         "" if estimated is None else f"{100 * estimated:.1f} %",
                         "" if figures.get("prior_error") is None
                         else f"{100 * figures['prior_error']:.1f} %",
                         f"{100 * measured['rate']:.1f} %" if measured else ""])
    if not rows:
        return []
    return ["Each system's reliability on this job, estimated without references (Dawid-Skene "
            "EM over a sample of the job's segments; prior: the mean of its own score-based "
            "estimates on those segments), "
            "against its measured error:", ""] + _table(
        ["language", "system", "estimated error", "prior", "measured error"], rows)


def _summaries(run) -> dict:
    return {r.name: r.summary for r in run.results}


def write_report(run, total: float) -> Path:
    s = _summaries(run)
    lines = ["# funfactory demo report", "",
             f"Seed {run.seed}, corpus scale `{run.scale}`, {total:.0f} s in all. Every figure "
             "below comes from this run; `../commands.sh` lists the commands it ran.", ""]
    lines += ["## Time per stage", ""]
    lines += _table(["stage", "seconds", "reused from an earlier run"],
                    [[r.name, f"{r.seconds:.1f}", "yes" if r.reused else ""] for r in run.results])
    if "stats" in s:
        lines += ["## Datasets: hours and counts per task", ""]
        lines += _table(["dataset", "samples", "hours", "by task", "by language"],
                        [[name, d["samples"], d["hours"], d["by_task"], d["by_language"]]
                         for name, d in s["stats"].items()])
        for name, d in s["stats"].items():
            lines += _image(run, d.get("png"), f"durations {name}")
    rejects = {name: s[name].get("rejects_by_reason") for name in
               ("label", "augment", "streaming", "codeswitch", "hotword") if name in s}
    lines += ["## Rejects by reason", ""]
    lines += _table(["pipeline", "rejects by reason"], [[k, v or "none"] for k, v in rejects.items()])
    if "label" in s:
        quality = s["label"].get("label_quality", {})
        lines += ["## Label quality: each ASR system and the vote against the known text", ""]
        rows = [[lang, system, q["metric"].upper(), f"{100 * q['rate']:.1f} %", q["segments"]]
                for lang, systems in quality.items() for system, q in systems.items()]
        lines += _table(["language", "system", "metric", "error rate", "segments"], rows)
        lines += _reliability_table(quality, s["label"].get("job_reliability") or {})
        lines += _vote_table(quality, s["label"].get("vote_by_language") or {})
        lines += [f"Label chosen by system: {s['label'].get('chosen_by_system')}", ""]
        lines += _image(run, s["label"].get("png"), "label durations")
    if "augment" in s:
        lines += ["## Noise augmentation", ""]
        lines += _image(run, s["augment"].get("png"), "SNR histogram")
        lines += _image(run, s["augment"].get("spectrograms"), "spectrograms")
    if "model" in s:
        m = s["model"]
        lines += ["## The recogniser: `cpu` size trained here", "",
                  "The pretrained Whisper base encoder (frozen), a 2-layer transformer CTC head "
                  "and SmolLM2-135M-Instruct reading the CTC hypothesis (report section 2, "
                  "Figure 2), trained on the `speech` stage's TTS speech plus the label job's "
                  f"output. Final model: `{m['final_model']}`. CER counts characters; the "
                  "sentences were never used in training. *LLM, greedy*: the LLM's own greedy "
                  "transcript. *Model*: the model's decoding, the LLM's greedy transcript and "
                  "samples (all its own text) with the CTC head choosing the one it finds most "
                  "probable. The validation curves decode greedily.", ""]
        rows = [[condition, r["utterances"]] + [f"{100 * r[key]:.1f} %" for key in (
                    "ctc_cer", "ctc_wer", "llm_greedy_cer", "llm_greedy_wer", "llm_cer", "llm_wer")]
                for condition, r in m["final"].items()]
        lines += _table(["test condition", "utterances", "CTC head CER", "CTC head WER",
                         "LLM, greedy: CER", "LLM, greedy: WER", "model: CER", "model: WER"], rows)
        lines += _image(run, m.get("png"), "validation error rates against steps")
        examples = next(iter(m["final"].values()))["examples"]
        lines += _table(["reference", "CTC hypothesis", "LLM, greedy", "model"],
                        [[e["reference"], e["ctc"], e["llm_greedy"], e["llm"]] for e in examples])
    if "evaluate" in s:
        lines += ["## The model and the baselines, per condition", "",
                  "The `cpu` model after SFT and after the GRPO steps, and Whisper base, on the "
                  "demo corpus's leakage-free test set (clean and with held-out noise) and, for "
                  "our model only, on its own training segments against their pseudo-labels.", "",
                  s["evaluate"].get("markdown", ""), ""]
        for png in s["evaluate"].get("pngs", []):
            lines += _image(run, png, Path(png).stem)
    if "grpo" in s:
        lines += ["## GRPO steps (section 4.4)", "", "```json",
                  json.dumps(s["grpo"], ensure_ascii=False, indent=1), "```", ""]
    lines += ["## Every stage's summary", ""]
    for r in run.results:
        lines += [f"### {r.name}", "", "```json",
                  json.dumps(r.summary, ensure_ascii=False, indent=1, default=str)[:6000],
                  "```", ""]
    folder = run.path("report")
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    (folder / "report.json").write_text(json.dumps(
        {"total_seconds": total,
         "final_model": s.get("model", {}).get("final_model"),
         "grpo_model": str(run.path("runs", "grpo", "final")) if "grpo" in s else None,
         "stages": [vars(r) for r in run.results]},
        ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return report
