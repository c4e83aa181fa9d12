"""Label quality in noise: reliability-weighted voting and the estimated-error keep rule against
the old mean-pairwise rule and the oracle, per language and SNR, on the calibration set.

The calibration set (:mod:`funfactory.pipelines.label.calibration_set`: known-text TTS from
several voices in English, Mandarin and zh-en, in real noise at clean, 10, 5 and 0 dB, with every
system's hypothesis; built once into the cache, see its module) is voted with the label
job's own code (:func:`funfactory.pipelines.label.vote.decide`, default config: each language's
fitted threshold), each language and condition as one job with its own reliability estimate (the
Dawid-Skene EM). Per language and condition it prints:

- each system's error rate (WER for en, CER for zh, MER for zh-en) and the chosen label's;
- yield and error of the kept labels at the default threshold, and the share of *labelable*
  segments kept (one hypothesis within 5 % of the reference), with counts;
- the same for the old rule (unweighted medoid, kept when the mean pairwise error <= 0.35) and for
  the oracle (the best hypothesis per segment, kept when labelable);
- the held-out voices apart (the fit never saw them);
- each job's EM estimate of every system's error rate against the rate measured;
- the same table cross-validated over voices: every voice in turn held out of the fit (in every
  language it speaks) and voted with that fit, so every segment is judged by a model that never
  heard its voice (nine fits, a few minutes);
- the calibration of the estimate: mean estimated against mean measured error over buckets of
  the estimate (a bucket under ``MIN_BUCKET`` segments merged into its neighbour), with counts,
  for all voices, the held-out voices and the cross-validated votes.

- small jobs (:func:`small_jobs`): many random jobs of ``SMALL_JOB_SIZES`` segments drawn from
  the English calibration records (per SNR, and mixed over SNRs), each estimated and voted as a
  label job of that size would be (its own Dawid-Skene EM over its own segments, then the same
  decision): yield of all segments, labelable segments kept, and kept error, as the mean over
  jobs and the worst decile (the 90th percentile over jobs that keep something).

Two PNGs go to ``bench-out/``: ``label-yield.png`` (kept-label error against yield as the
threshold varies) and ``label-reliability.png`` (estimated against measured error).

Run: ``python -m bench.bench_label_quality``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.common import row

ROOT = Path(__file__).resolve().parent.parent
OLD_MAX_DISAGREEMENT = 0.35
LABELABLE = 0.05
BUCKETS = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 1.01)
MIN_BUCKET = 20
CONDITIONS = ("clean", "10dB", "5dB", "0dB")
SNR_ORDER = (-1.0, 10.0, 5.0, 0.0)  # the jobs' keys (fit_confidence.jobs): -1 is clean
SMALL_JOB_SIZES = (4, 10, 30)
SMALL_JOBS = 60  # random jobs per size and condition
SMALL_JOB_SEED = 13


def _voted(records: list[dict], model) -> tuple[list[dict], dict]:
    """Every record voted as the label job votes it with ``model``, each job (language and
    condition) with its own reliability estimate; and the estimates."""
    from funfactory.pipelines.label.confidence import job_reliability
    from funfactory.pipelines.label.fit_confidence import jobs

    out, estimates = [], {}
    for (language, snr_db), part in jobs(records).items():
        job = job_reliability(part, model, {"segments": len(part)})
        estimates[language, snr_db] = job.languages[language]
        out.extend(_voted_job(part, job, model))
    return out, estimates


def _cross_validated(records: list[dict]) -> list[dict]:
    """Every record voted with a confidence model fitted without its voice (the fit of
    ``fit_confidence`` with that voice held out, in every language): each voice in turn is the
    voice the fit never saw."""
    from funfactory.pipelines.label.confidence import ConfidenceModel
    from funfactory.pipelines.label.fit_confidence import fit

    out = []
    for voice in sorted({r["voice"] for r in records}):
        part = [{**r, "held_out": r["voice"] == voice} for r in records]
        voted, _ = _voted(part, ConfidenceModel.from_json(fit(part)))
        out.extend(v for v in voted if v["held_out"])
    return out


def _voted_job(records: list[dict], job, model) -> list[dict]:
    from funfactory.eval.scoring import pairwise_agreement, score
    from funfactory.pipelines.label.config import VoteConfig
    from funfactory.pipelines.label.vote import decide

    cfg = VoteConfig()
    out = []
    for r in records:
        language = r["language"]
        texts = {s: v["text"] for s, v in r["labels"].items()}
        decision = decide(r["labels"], language, r["duration"], cfg, model, job)
        old = pairwise_agreement(texts, language=language)
        per_system = {s: score([r["reference"]], [t], language=language) for s, t in texts.items()}
        best = min(per_system, key=lambda s: (per_system[s].rate, s))
        out.append({
            "language": language, "condition": r["key"].rsplit("-", 1)[1],
            "snr_db": -1.0 if r["snr_db"] is None else r["snr_db"],
            "held_out": r["held_out"], "reference": r["reference"], "texts": texts,
            "chosen_text": decision.text, "kept": decision.reason is None,
            "estimated": decision.estimated_wer, "reason": decision.reason,
            "old_text": texts[old.most_agreed()],
            "old_kept": len(texts) == 1 or old.mean <= OLD_MAX_DISAGREEMENT,
            "oracle_text": texts[best], "labelable": per_system[best].rate <= LABELABLE,
            "chosen_error": min(score([r["reference"]], [decision.text],
                                      language=language).rate, 1.0)})
    return out


def small_jobs(records: list[dict], model, sizes=SMALL_JOB_SIZES, count: int = SMALL_JOBS,
               seed: int = SMALL_JOB_SEED) -> list[dict]:
    """Random English jobs of each size in ``sizes`` (``count`` per size and condition: each SNR
    alone, and ``mixed`` drawn from all four), each estimated from its own segments and voted as a
    label job of that size would be; per size and condition the mean over jobs of the yield of all
    segments, of the share of labelable segments kept and of the kept error, and the worst decile
    of the kept error (90th percentile over the jobs that keep something)."""
    import random

    from funfactory.pipelines.label.confidence import job_reliability

    english = [r for r in records if r["language"] == "en"]
    pools = {condition: [r for r in english if r["key"].rsplit("-", 1)[1] == condition]
             for condition in CONDITIONS}
    pools["mixed"] = english
    rng = random.Random(seed)
    out = []
    for size in sizes:
        for condition, pool in pools.items():
            yields, labelable, errors = [], [], []
            for _ in range(count):
                part = rng.sample(pool, size)
                voted = _voted_job(part, job_reliability(part, model, {"segments": size}), model)
                kept = [v for v in voted if v["kept"]]
                yields.append(len(kept) / size)
                able = [v for v in voted if v["labelable"]]
                if able:
                    labelable.append(sum(v["kept"] for v in able) / len(able))
                if kept:
                    errors.append(_rate(kept, "chosen_text", "en"))
            out.append({"size": size, "condition": condition, "jobs": count,
                        "yield": float(np.mean(yields)),
                        "labelable_kept": float(np.mean(labelable)),
                        "kept_error": float(np.mean(errors)),
                        "kept_error_p90": float(np.percentile(errors, 90)),
                        "keeping_jobs": len(errors)})
    return out


def _small_job_table(lines: list[dict]) -> str:
    table = ["| segments per job | SNR | yield (all segments) | labelable kept | kept error: "
             "mean / worst decile |", "| ---: | --- | ---: | ---: | --- |"]
    table += [f"| {f['size']} | {f['condition']} | {100 * f['yield']:.0f} % | "
              f"{100 * f['labelable_kept']:.0f} % | {100 * f['kept_error']:.1f} / "
              f"{100 * f['kept_error_p90']:.1f} |" for f in lines]
    return "\n".join(table)


def _rate(items: list[dict], field: str, language: str) -> float:
    from funfactory.eval.scoring import score
    if not items:
        return float("nan")
    return score([i["reference"] for i in items], [i[field] for i in items],
                 language=language).rate


def _line(items: list[dict], language: str) -> dict:
    from funfactory.eval.scoring import score
    systems = sorted({s for i in items for s in i["texts"]})
    kept = [i for i in items if i["kept"]]
    old = [i for i in items if i["old_kept"]]
    labelable = [i for i in items if i["labelable"]]
    return {
        "n": len(items),
        "systems": {s: score([i["reference"] for i in items if s in i["texts"]],
                             [i["texts"][s] for i in items if s in i["texts"]],
                             language=language).rate for s in systems},
        "chosen": _rate(items, "chosen_text", language),
        "kept_yield": len(kept) / len(items), "kept_error": _rate(kept, "chosen_text", language),
        "labelable_kept": (sum(i["kept"] for i in labelable) / len(labelable)
                           if labelable else float("nan")),
        "labelable_counts": (sum(i["kept"] for i in labelable), len(labelable)),
        "kept_count": len(kept),
        "old_yield": len(old) / len(items), "old_error": _rate(old, "old_text", language),
        "oracle_yield": len(labelable) / len(items),
        "oracle_error": _rate(labelable, "oracle_text", language),
        "oracle_all": _rate(items, "oracle_text", language)}


def _table(voted: list[dict]) -> tuple[list[str], dict]:
    lines = ["| language | SNR | n | each system | chosen (all) | kept: yield / error / "
             "labelable kept | old rule: yield / error | oracle: yield / error |",
             "| --- | --- | ---: | --- | ---: | --- | --- | --- |"]
    figures = {}
    for language in ("en", "zh", "zh-en"):
        for condition in CONDITIONS:
            items = [v for v in voted if v["language"] == language
                     and v["condition"] == condition]
            if not items:
                continue
            f = figures[language, condition] = _line(items, language)
            systems = ", ".join(f"{s} {100 * r:.1f}" for s, r in f["systems"].items())
            lines.append(
                f"| {language} | {condition} | {f['n']} | {systems} | {100 * f['chosen']:.1f} | "
                f"{100 * f['kept_yield']:.0f} % ({f['kept_count']}) / "
                f"{100 * f['kept_error']:.1f} / "
                f"{100 * f['labelable_kept']:.0f} % ({f['labelable_counts'][0]}/"
                f"{f['labelable_counts'][1]}) | {100 * f['old_yield']:.0f} % / "
                f"{100 * f['old_error']:.1f} | {100 * f['oracle_yield']:.0f} % / "
                f"{100 * f['oracle_error']:.1f} |")
    return lines, figures


def _system_rate(voted: list[dict], language: str, snr_db: float, system: str) -> float:
    from funfactory.eval.scoring import score
    items = [v for v in voted if v["language"] == language and v["snr_db"] == snr_db
             and system in v["texts"]]
    return score([i["reference"] for i in items], [i["texts"][system] for i in items],
                 language=language).rate


def _reliability_table(voted: list[dict], estimates: dict) -> str:
    """Each job's EM estimate of every system's error rate against its measured rate."""
    lines = ["| language | SNR | each system: EM estimate / measured (%) |", "| --- | --- | --- |"]
    for (language, snr_db), table in estimates.items():
        lines.append(f"| {language} | {CONDITIONS[SNR_ORDER.index(snr_db)]} | " + ", ".join(
            f"{s} {100 * f['estimated_error']:.1f} / "
            f"{100 * _system_rate(voted, language, snr_db, s):.1f}"
            for s, f in table.items()) + " |")
    return "\n".join(lines)


def _buckets(voted: list[dict]) -> list[tuple[float, float, int]]:
    """Mean estimate, mean measured error and count per bucket of the estimate (``BUCKETS``); a
    bucket with fewer than ``MIN_BUCKET`` segments is merged into the one below it (the lowest
    into the one above), so that no bucket mean rests on a handful of segments."""
    groups = [[v for v in voted if low <= v["estimated"] < high]
              for low, high in zip(BUCKETS, BUCKETS[1:])]
    merged: list[list[dict]] = []
    for group in groups:
        if merged and (len(group) < MIN_BUCKET or len(merged[-1]) < MIN_BUCKET):
            merged[-1] = merged[-1] + group
        else:
            merged.append(group)
    if len(merged) > 1 and len(merged[-1]) < MIN_BUCKET:
        merged[-2] += merged.pop()
    return [(float(np.mean([v["estimated"] for v in g])),
             float(np.mean([v["chosen_error"] for v in g])), len(g)) for g in merged if g]


def _plots(voted: list[dict], cross: list[dict], thresholds: dict[str, float], out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for language in ("en", "zh", "zh-en"):
        items = sorted((v for v in voted if v["language"] == language),
                       key=lambda v: v["estimated"])
        xs, ys = [], []
        for t in np.linspace(0.0, 1.0, 101):
            kept = [v for v in items if v["estimated"] <= t]
            if kept:
                xs.append(len(kept) / len(items))
                ys.append(_rate(kept, "chosen_text", language))
        ax.plot(xs, [100 * y for y in ys], label=language)
        kept = [v for v in items if v["kept"]]
        if kept:
            ax.plot([len(kept) / len(items)], [100 * _rate(kept, "chosen_text", language)],
                    "ko")
    ax.axhline(5.0, color="grey", linestyle=":")
    ax.set_xlabel("yield (share of segments kept)")
    ax.set_ylabel("error rate of kept labels (%)")
    ax.set_title("threshold on estimated error; dots: the fitted default (" + ", ".join(
        f"{language} {t:g}" for language, t in thresholds.items()) + ")", fontsize=8)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "label-yield.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for items, marker, label in (
            ([v for v in voted if not v["held_out"]], "o", "fitted voices"),
            ([v for v in voted if v["held_out"]], "s", "held-out voices"),
            (cross, "^", "each voice, fit without it")):
        points = _buckets(items)
        ax.scatter([100 * p[0] for p in points], [100 * p[1] for p in points],
                   s=[10 + p[2] for p in points], marker=marker, label=label, alpha=0.7)
    ax.plot([0, 100], [0, 100], "k:")
    ax.set_xlabel("estimated error (%)")
    ax.set_ylabel("measured error (%)")
    ax.set_title("reliability diagram (bucket means)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "label-reliability.png", dpi=100)
    plt.close(fig)


def main() -> list[dict]:
    from funfactory.pipelines.label.calibration_set import calibration_set
    from funfactory.pipelines.label.confidence import load_model

    records = calibration_set(echo=print)
    model = load_model()
    voted, estimates = _voted(records, model)
    thresholds = {language: model.threshold(language) for language in ("en", "zh", "zh-en")}
    print("default thresholds (fitted): " + ", ".join(f"{k} {v:g}" for k, v in thresholds.items()))
    lines, figures = _table(voted)
    whole = {c: figures["en", c]["kept_yield"] for c in CONDITIONS}
    whole["mixed"] = float(np.mean(list(whole.values())))
    print("\n".join(lines))
    held = [v for v in voted if v["held_out"]]
    print("held-out voices: " + "; ".join(
        f"{language} kept {sum(v['kept'] for v in items)}/{len(items)} at "
        f"{100 * _rate([v for v in items if v['kept']], 'chosen_text', language):.1f} %"
        for language in ("en", "zh", "zh-en")
        for items in [[v for v in held if v["language"] == language]] if items))
    print(_reliability_table(voted, estimates))
    small = small_jobs(records, model)
    print(f"small English jobs ({SMALL_JOBS} random jobs per size and condition, each its own "
          "EM and vote):")
    print(_small_job_table(small))
    cross = _cross_validated(records)
    print("each voice voted with a fit that never saw it (every voice in turn):")
    print("\n".join(_table(cross)[0]))
    calibration = {"all voices": _buckets(voted), "held-out voices": _buckets(held),
                   "each voice, fit without it": _buckets(cross)}
    for name, points in calibration.items():
        print(f"calibration, {name} (estimated -> measured %, n): " + "; ".join(
            f"{100 * e:.1f} -> {100 * m:.1f} ({n})" for e, m, n in points))
    out = ROOT / "bench-out"
    out.mkdir(exist_ok=True)
    _plots(voted, cross, thresholds, out)
    rows = []
    for (language, condition), f in figures.items():
        name = f"label_{language}_{condition}"
        best = min(f["systems"].values())
        rows.append(row(name, "error % chosen label, all segments", 100 * f["chosen"],
                        "best single system", 100 * best, "%"))
        rows.append(row(name, "error % kept labels (default threshold)",
                        100 * f["kept_error"], "target", 5.0, "%"))
        rows.append(row(name, "yield % kept", 100 * f["kept_yield"], "oracle yield",
                        100 * f["oracle_yield"], "%"))
        rows.append(row(name, "yield % kept, old mean-pairwise rule", 100 * f["old_yield"],
                        "new rule", 100 * f["kept_yield"], "%"))
    for (language, snr_db), table in estimates.items():
        if len(table) < 2:
            continue
        name = f"label_em_{language}_{CONDITIONS[SNR_ORDER.index(snr_db)]}"
        for system, figures in table.items():
            rows.append(row(name, f"EM error % {system}", 100 * figures["estimated_error"],
                            "measured", 100 * _system_rate(voted, language, snr_db, system),
                            "%"))
    for f in small:
        name = f"label_small_job_{f['size']}_{f['condition']}"
        rows.append(row(name, "yield % kept, mean over jobs", 100 * f["yield"],
                        "whole-condition job", 100 * whole[f["condition"]], "%"))
        rows.append(row(name, "error % kept, worst decile of jobs", 100 * f["kept_error_p90"],
                        "target", 5.0, "%"))
    for name, points in calibration.items():
        rows.append(row("label_calibration", f"max |estimated - measured| by bucket, {name}",
                        max(abs(e - m) for e, m, _ in points) * 100, "target", 5.0, "pt"))
    return rows


if __name__ == "__main__":
    main()
