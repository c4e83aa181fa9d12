"""Fit the label-confidence maps on the calibration set and write ``label_confidence.json``.

Run: ``python -m funfactory.pipelines.label.fit_confidence [--out PATH]`` (builds the cached
calibration set first if needed, then fits in about half a minute). The fit uses every voice but the
held-out one per language (:data:`funfactory.pipelines.label.calibration_set.HELD_OUT`); the
held-out voices are scored with the fitted maps and their figures written beside the maps
(``checks``), so a fit that only works on the voices it saw shows up there. The calibration set is
voted as label jobs, one per language and condition (:func:`jobs`), each with its own reliability
estimate made over all its records (the EM reads no reference, so the held-out voices' hypotheses
take part as they would in a label job; no map is fitted on them).

What is fitted (:mod:`funfactory.pipelines.label.confidence`):

- per system and language, and per system family and language, a logistic map from the
  hypothesis' own evidence to its error rate (fractional targets: each segment is a positive
  example weighted by its error and a negative one weighted by the rest);
- ``reliability_prior``: the job estimate's prior (:func:`funfactory.pipelines.label.confidence.
  job_reliability`), a logit-linear map from a system's mean own estimate over a job to the rate
  the EM finds on that job from agreement alone (no prior), weighted by the job's slots, over
  the calibration jobs with two or more systems; it puts the own maps (fitted to measured error)
  on the EM's scale (about half the measured rate for the Whisper pair, whose shared errors look
  right to a vote);
- ``own_evidence_weight``: how far a segment's own scores move a system off its job rate
  (:meth:`funfactory.pipelines.label.reliability.JobReliability.combine`), the value on a
  0.25 grid at which the fit below (label maps and thresholds, :func:`fit_label`) keeps the most
  training labels among those whose chosen labels are no worse than the best single system in
  every training job (:func:`beats_best_system`), ties to the lower error of the chosen
  multi-system labels: the fit's own aim (more labels at the same kept error), where the lowest
  chosen error alone turned on a few tenths of a point between weights;
- a logistic map from the label features to the chosen label's error, then an isotonic map on
  its output (segments with two or more systems), and per language an isotonic map from a
  system's own error to its measured error over every hypothesis taken alone (segments with one
  system);
- ``max_estimated_wer_by_language``: per language, the largest threshold on a 0.01 grid at which
  the kept training labels are at most ``TARGET_KEPT_WER`` in error pooled over the language's
  jobs and at most ``JOB_KEPT_WER`` in each of them that keeps ``MIN_JOB_KEPT`` or more
  (:func:`largest_threshold`); per language, because a language one system covers has a floor
  of its own (Whisper base's best Mandarin segments are estimated at about 8 % here) that must
  not hold back the threshold of a language with three; ``max_estimated_wer``: the same over
  every language, for a language the fit never saw.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from funfactory.eval.scoring import score
from funfactory.pipelines.label.calibration_set import HELD_OUT, calibration_set, plan_sha256
from funfactory.pipelines.label.confidence import (FAMILY_FEATURES, LABEL_FEATURES, MODEL_PATH,
                                                   ConfidenceModel, choose, estimate, family,
                                                   job_reliability, label_features, own_features,
                                                   system_error)
from funfactory.pipelines.label.reliability import logit

# pooled over a language's training segments, a margin under the 5 % bar; and the bar itself in
# every job (language and condition: 60 fitted-voice segments per English condition) that keeps
# enough labels for its kept error to mean something (at 0 dB, where about 18 are kept, one
# label moves it by two points)
TARGET_KEPT_WER = 0.04
JOB_KEPT_WER = 0.05
MIN_JOB_KEPT = 20
MIN_ROWS = 16
OWN_EVIDENCE_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
# 2: label features in log units, thresholds per language; 3: the job estimate's prior is read
# from the job's mean own estimates (no calibration-wide rate)
VERSION = "3"


def segment_error(reference: str, hypothesis: str, language: str) -> float:
    """One hypothesis' error rate against the reference, capped at 1."""
    return min(score([reference], [hypothesis], language=language or None).rate, 1.0)


def fit_logistic(rows: list[dict[str, float]], targets: list[float],
                 features: tuple[str, ...]) -> dict:
    from sklearn.linear_model import LogisticRegression
    x = np.array([[r[f] for f in features] for r in rows], dtype=np.float64)
    y = np.clip(np.array(targets, dtype=np.float64), 0.0, 1.0)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    z = (x - mean) / scale
    doubled = np.concatenate([z, z])
    labels = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
    weights = np.concatenate([y, 1.0 - y]) + 1e-6
    fit = LogisticRegression(C=1.0, max_iter=1000).fit(doubled, labels, sample_weight=weights)
    return {"features": list(features), "mean": mean.round(6).tolist(),
            "scale": scale.round(6).tolist(), "coef": fit.coef_[0].round(6).tolist(),
            "intercept": round(float(fit.intercept_[0]), 6), "rows": len(rows)}


def fit_isotonic(predicted: list[float], measured: list[float]) -> dict:
    from sklearn.isotonic import IsotonicRegression
    fit = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(predicted, measured)
    return {"x": [round(float(v), 6) for v in fit.X_thresholds_],
            "y": [round(float(v), 6) for v in fit.y_thresholds_]}


def system_rows(records: list[dict]) -> dict[str, tuple[str, list, list]]:
    """Training rows per model key (system/language, family/language and family), with the
    family whose features they use."""
    out: dict[str, tuple[str, list, list]] = {}
    for r in records:
        for system, label in r["labels"].items():
            features = own_features(label, r["language"], r["duration"])
            error = segment_error(r["reference"], label["text"], r["language"])
            fam = family(label)
            for key in (f"{system}/{r['language']}", f"{fam}/{r['language']}", fam):
                _, rows, targets = out.setdefault(key, (fam, [], []))
                rows.append(features)
                targets.append(error)
    return out


def jobs(records: list[dict]) -> dict[tuple, list[dict]]:
    """The calibration set as label jobs: one per language and condition (a job's data is
    usually of one kind; the reliability estimate is made per job and language)."""
    out: dict[tuple, list[dict]] = {}
    for r in records:
        out.setdefault((r["language"], -1.0 if r["snr_db"] is None else r["snr_db"]), []).append(r)
    return dict(sorted(out.items()))


def evaluate(records: list[dict], model: ConfidenceModel, held_out: bool = False) -> list[dict]:
    """Each record's choice, estimate and measured errors under ``model``, each job (:func:`jobs`)
    voted with its own reliability estimate; the records of the fitted voices, or with
    ``held_out`` those of the held-out ones. A job's estimate is made over all its records, the
    held-out voices' included: it reads no reference, as in a label job."""
    out = []
    for part in jobs(records).values():
        reliability = job_reliability(part, model, {"segments": len(part)})
        out.extend(_evaluate_job([r for r in part if r["held_out"] == held_out], model,
                                 reliability))
    return out


def _evaluate_job(records: list[dict], model: ConfidenceModel, reliability) -> list[dict]:
    out = []
    for r in records:
        choice = choose(r["labels"], r["language"], r["duration"], model, reliability)
        out.append({
            "record": r, "choice": choice, "estimated": estimate(choice, model, r["language"]),
            "chosen_error": segment_error(r["reference"], r["labels"][choice.chosen]["text"],
                                          r["language"])})
    return out


def single_isotonic(records: list[dict], model: ConfidenceModel) -> dict[str, dict]:
    """Per language (and "" for all), the isotonic map from a system's own estimated error to its
    measured error, over every hypothesis taken alone: what a one-system segment looks like."""
    pairs: dict[str, list[tuple[float, float]]] = {"": []}
    for r in records:
        for system, label in r["labels"].items():
            own = system_error(model, system, label, r["language"], r["duration"])
            measured = segment_error(r["reference"], label["text"], r["language"])
            pairs.setdefault(r["language"], []).append((own, measured))
            pairs[""].append((own, measured))
    return {language: fit_isotonic([p for p, _ in rows], [m for _, m in rows])
            for language, rows in sorted(pairs.items())}


def kept_error(evaluated: list[dict], threshold) -> tuple[float, int]:
    """Token-weighted error of the labels with estimate <= threshold (a number, or a function of
    the language), and how many."""
    limit = threshold if callable(threshold) else (lambda _: threshold)
    errors = tokens = kept = 0.0
    for e in evaluated:
        r = e["record"]
        if e["estimated"] <= limit(r["language"]):
            n = max(score([r["reference"]], [r["reference"]],
                          language=r["language"]).reference_tokens, 1)
            errors += e["chosen_error"] * n
            tokens += n
            kept += 1
    return (errors / tokens if tokens else 0.0), int(kept)


def reliability_prior(records: list[dict], model: ConfidenceModel) -> dict:
    """The logit-linear map from a system's mean own estimate over a calibration job to the EM's
    rate on that job from agreement alone (module docstring), with the points it was fitted on."""
    points = []
    for (language, _), part in jobs(records).items():
        if all(len(r["labels"]) < 2 for r in part):
            continue
        table = job_reliability(part, model, {}, prior_slots=0.0).languages[language]
        points += [(logit(f["mean_own_estimate"]), logit(f["slot_error"]), f["slots"])
                   for f in table.values()]
    x, y, slots = (np.array(v, dtype=np.float64) for v in zip(*points))
    slope, intercept = np.polyfit(x, y, 1, w=np.sqrt(slots))
    return {"intercept": round(float(intercept), 6), "slope": round(float(slope), 6),
            "points": len(points)}


def fit(records: list[dict]) -> dict:
    train = [r for r in records if not r["held_out"]]
    systems = {}
    for key, (fam, rows, targets) in sorted(system_rows(train).items()):
        if len(rows) >= MIN_ROWS:
            systems[key] = fit_logistic(rows, targets, FAMILY_FEATURES[fam])
    every = [segment_error(r["reference"], label["text"], r["language"])
             for r in train for label in r["labels"].values()]
    identity = {"x": [0.0, 1.0], "y": [0.0, 1.0]}
    draft = {"version": VERSION, "systems": systems,
             "default_system_error": round(float(np.mean(every)), 4),
             "label": {"features": list(LABEL_FEATURES), "mean": [0.0] * len(LABEL_FEATURES),
                       "scale": [1.0] * len(LABEL_FEATURES), "coef": [0.0] * len(LABEL_FEATURES),
                       "intercept": 0.0},
             "label_isotonic": identity, "single_isotonic": {"": identity},
             "max_estimated_wer": 1.0, "max_estimated_wer_by_language": {},
             "own_evidence_weight": 1.0, "reliability_prior": {"intercept": 0.0, "slope": 1.0}}
    draft["reliability_prior"] = reliability_prior(records, ConfidenceModel.from_json(draft))
    fits = [fit_label(records, {**draft, "own_evidence_weight": w}) for w in OWN_EVIDENCE_WEIGHTS]
    draft = max(fits, key=lambda d: (d["checks"]["train"]["beats_best_system"],
                                     d["checks"]["train"]["kept"], -d["checks"]["train"]["error"],
                                     -d["own_evidence_weight"]))
    model = ConfidenceModel.from_json(draft)
    draft["fitted_on"] = {
        "calibration_plan_sha256": plan_sha256(), "clips": len(train),
        "voices": sorted({r["voice"] for r in train}), "held_out_voices": HELD_OUT,
        "target_kept_wer": TARGET_KEPT_WER}
    draft["checks"] = {name: summary(evaluate(records, model, held_out), model.threshold)
                       for name, held_out in (("train", False), ("held_out", True))}
    return draft


def fit_label(records: list[dict], draft: dict) -> dict:
    """``draft`` (own maps, prior and weight set) with the label maps and the thresholds fitted,
    and ``checks["train"]``: the fitted voices' labels kept at those thresholds, and the error of
    their chosen multi-system labels (what picks the weight)."""
    train = [r for r in records if not r["held_out"]]
    evaluated = evaluate(records, ConfidenceModel.from_json(draft))
    multi = [e for e in evaluated if len(e["choice"].systems) > 1]
    draft = {**draft, "label": fit_logistic([label_features(e["choice"]) for e in multi],
                                            [e["chosen_error"] for e in multi], LABEL_FEATURES)}
    model = ConfidenceModel.from_json(draft)
    draft["label_isotonic"] = fit_isotonic([model.label(label_features(e["choice"]))
                                            for e in multi], [e["chosen_error"] for e in multi])
    draft["single_isotonic"] = single_isotonic(train, model)
    evaluated = evaluate(records, ConfidenceModel.from_json(draft))
    by_language: dict[str, list[dict]] = {}
    for e in evaluated:
        by_language.setdefault(e["record"]["language"], []).append(e)
    draft["max_estimated_wer"] = largest_threshold(evaluated)
    draft["max_estimated_wer_by_language"] = {
        language: largest_threshold(part) for language, part in sorted(by_language.items())}
    model = ConfidenceModel.from_json(draft)
    multi = [e for e in evaluated if len(e["choice"].systems) > 1]
    draft["checks"] = {"train": {**summary(evaluated, model.threshold),
                                 "error": kept_error(multi, 2.0)[0],
                                 "beats_best_system": beats_best_system(multi)}}
    return draft


def beats_best_system(evaluated: list[dict]) -> bool:
    """Whether in every job (language and condition) the chosen labels are no worse than the
    best single system's hypotheses."""
    by_job: dict[tuple, list[dict]] = {}
    for e in evaluated:
        by_job.setdefault((e["record"]["language"], e["record"]["snr_db"]), []).append(e)
    for (language, _), part in by_job.items():
        references = [e["record"]["reference"] for e in part]
        systems = set.intersection(*(set(e["record"]["labels"]) for e in part))
        best = min(score(references, [e["record"]["labels"][s]["text"] for e in part],
                         language=language or None).rate for s in systems)
        chosen = score(references, [e["record"]["labels"][e["choice"].chosen]["text"]
                                    for e in part], language=language or None).rate
        if chosen > best:
            return False
    return True


def largest_threshold(evaluated: list[dict]) -> float:
    """The largest threshold on a 0.01 grid at which the kept labels are at most
    ``TARGET_KEPT_WER`` in error pooled and at most ``JOB_KEPT_WER`` in every job (language and
    condition) that keeps ``MIN_JOB_KEPT`` or more, brought down to the grid step above the
    largest estimate it keeps: a threshold is not stretched over a gap where the calibration set
    has no segment (a language whose labels are all estimated above 30 % would otherwise get
    0.29). The grid's first step when it keeps nothing."""
    by_job: dict[tuple, list[dict]] = {}
    for e in evaluated:
        by_job.setdefault((e["record"]["language"], e["record"]["snr_db"]), []).append(e)
    grid = [round(t, 2) for t in np.arange(0.01, 0.51, 0.01)]
    ok = [t for t in grid if kept_error(evaluated, t)[0] <= TARGET_KEPT_WER
          and all(error <= JOB_KEPT_WER for error, kept in (
              kept_error(part, t) for part in by_job.values()) if kept >= MIN_JOB_KEPT)]
    kept = [e["estimated"] for e in evaluated if ok and e["estimated"] <= max(ok)]
    if not kept:
        return grid[0]
    return min(max(ok), max(grid[0], math.ceil(round(max(kept) * 100, 6)) / 100))


def summary(evaluated: list[dict], threshold) -> dict:
    """Kept share and error at the threshold, and the mean estimate vs measured error."""
    error, kept = kept_error(evaluated, threshold)
    estimated = [e["estimated"] for e in evaluated]
    measured = [e["chosen_error"] for e in evaluated]
    return {"segments": len(evaluated), "kept": kept, "kept_error": round(error, 4),
            "mean_estimated": round(float(np.mean(estimated)), 4) if evaluated else None,
            "mean_measured": round(float(np.mean(measured)), 4) if evaluated else None}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(MODEL_PATH), help="where to write the fitted maps")
    args = parser.parse_args(argv)
    fitted = fit(calibration_set(echo=print))
    Path(args.out).write_text(json.dumps(fitted, indent=1, ensure_ascii=False) + "\n",
                              encoding="utf-8")
    print(json.dumps({"max_estimated_wer": fitted["max_estimated_wer"],
                      "checks": fitted["checks"]}, indent=1))
    return fitted


if __name__ == "__main__":
    main()
