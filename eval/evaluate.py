"""Score a system on a shard set: decode (with real-time factor), align, count (section 6).

:func:`decode_shards` runs a :class:`funfactory.eval.systems.System` over test shards in
batches and times it; :func:`evaluate` scores hypotheses (decoded here or read from a file)
against the shards' ``text`` with the metric of the set's language, adds hotword metrics where
samples carry hotword prompts, and returns one result record: the summary the report tables
read, plus per-utterance rows (duration, SNR, errors) for the bucket plots.
"""

from __future__ import annotations

import csv
import itertools
import json
import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping

from funfactory.errors import FunfactoryError
from funfactory.eval.hotword_metrics import hotword_metrics
from funfactory.eval.scoring import score


def _snr(meta: dict) -> float | None:
    augment = meta.get("augment") or {}
    value = augment.get("snr_db", augment.get("snr"))
    return float(value) if isinstance(value, (int, float)) else None


def reference_records(shards) -> list[dict]:
    """key, text, language, duration, SNR and hotwords of every sample (no audio decoded)."""
    from funfactory.shards.reader import ShardReader

    return [{"key": s.key, "reference": s.meta["text"], "language": s.meta["language"],
             "duration": float(s.meta["duration"]), "snr_db": _snr(s.meta),
             "hotwords": list((s.meta.get("prompt") or {}).get("hotwords") or [])}
            for s in ShardReader(shards, decode=False)]


def decode_shards(system, shards, batch_size: int = 8) -> tuple[dict[str, str], float, float]:
    """(hypotheses by key, decode seconds, audio seconds) of ``system`` over ``shards``."""
    from funfactory.shards.reader import ShardReader

    hypotheses: dict[str, str] = {}
    decode_seconds = audio_seconds = 0.0
    samples = iter(ShardReader(shards))
    while batch := list(itertools.islice(samples, batch_size)):
        started = time.perf_counter()
        texts = system.transcribe([s.audio for s in batch], [s.meta for s in batch])
        decode_seconds += time.perf_counter() - started
        audio_seconds += sum(len(s.audio) / s.sample_rate for s in batch)
        hypotheses.update({s.key: t for s, t in zip(batch, texts)})
    return hypotheses, decode_seconds, audio_seconds


def read_hypotheses(path: str | Path) -> dict[str, str]:
    """A JSONL file of {"key": ..., "text": ...} lines."""
    hypotheses = {}
    with Path(path).open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                hypotheses[str(record["key"])] = str(record.get("text") or "")
            except (json.JSONDecodeError, KeyError, TypeError):
                raise FunfactoryError(f"{path}:{number}: expected a JSON object with key and text") from None
    return hypotheses


def evaluate(references: list[dict], hypotheses: Mapping[str, str], system: str, test_set: str,
             condition: str = "offline", language: str | None = None,
             rtf: float | None = None) -> dict:
    """One result record (module docstring). A reference without a hypothesis scores as an
    empty output (all deletions) and is counted as ``missing_hypotheses``."""
    if not references:
        raise FunfactoryError(f"test set {test_set!r} has no samples to score")
    languages = Counter(r["language"] for r in references)
    if language is None:
        # One language: its own metric. Several: the mixed error rate, whose tokens (Han
        # characters, Latin words) make it WER on English and CER on Chinese utterances alike.
        language = next(iter(languages)) if len(languages) == 1 else "zh-en"
    keys = [r["key"] for r in references]
    missing = [k for k in keys if k not in hypotheses]
    hyps = {k: hypotheses.get(k, "") for k in keys}
    result = score({r["key"]: r["reference"] for r in references}, hyps, language=language)
    utterances = [{"key": u.key, "system": system, "duration": r["duration"], "snr_db": r["snr_db"],
                   "errors": u.errors, "reference_tokens": u.reference_tokens,
                   "substitutions": u.substitutions, "deletions": u.deletions,
                   "insertions": u.insertions, "rate": u.rate,
                   "reference": u.reference, "hypothesis": u.hypothesis}
                  for u, r in zip(result.utterances, references)]
    record = {"system": system, "test_set": test_set, "condition": condition,
              "language": language, **result.summary(), "missing_hypotheses": len(missing),
              "rtf": rtf}
    if len(languages) > 1:
        record["by_language"] = {}
        for lang in sorted(languages):
            subset = [r for r in references if r["language"] == lang]
            part = score({r["key"]: r["reference"] for r in subset},
                         {r["key"]: hyps[r["key"]] for r in subset}, language=lang)
            record["by_language"][lang] = {"metric": part.metric, "rate": part.rate,
                                           "utterances": len(subset)}
    if any(r["hotwords"] for r in references):
        hot = hotword_metrics([r["reference"] for r in references], [hyps[k] for k in keys],
                              [r["hotwords"] for r in references], language)
        record.update(hot.summary())
    record["utterances"] = utterances
    return record


def write_result(record: dict, out_dir: str | Path) -> Path:
    """``{system}__{test_set}__{condition}.json`` and a per-utterance ``.csv`` beside it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "__".join(str(record[k]).replace("/", "_") for k in ("system", "test_set", "condition"))
    path = out_dir / f"{stem}.json"
    path.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    fields = list(record["utterances"][0]) if record["utterances"] else ["key"]
    with (out_dir / f"{stem}.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(record["utterances"])
    return path


def read_results(paths: Iterable[str | Path]) -> list[dict]:
    """Result records from files or folders of ``*.json`` written by :func:`write_result`."""
    records = []
    for location in paths:
        location = Path(location)
        files = sorted(location.glob("*.json")) if location.is_dir() else [location]
        for file in files:
            record = json.loads(file.read_text(encoding="utf-8"))
            if isinstance(record, dict) and {"system", "test_set", "rate"} <= set(record):
                records.append(record)
    if not records:
        raise FunfactoryError(f"no result records in {list(map(str, paths))}: run `funfactory eval "
                              "score` or `funfactory eval run` first")
    return records


def write_report(records: list[dict], out_dir: str | Path) -> list[Path]:
    """Tables (error rate; RTF and hotword recall where present) and the three plots."""
    from funfactory.eval import report

    out_dir = Path(out_dir)
    written = []
    rates = report.pivot(records)
    written += [report.write_markdown(rates, out_dir / "error_rates.md", "Error rate (%)"),
                report.write_csv(rates, out_dir / "error_rates.csv"),
                report.plot_by_condition(rates, out_dir / "error_rate_by_condition.png")]
    for field, title, best in (("rtf", "Real-time factor", "min"),
                               ("hotword_recall", "Hotword recall (%)", "max"),
                               ("hotword_accuracy", "Hotword accuracy (%)", "max")):
        present = [r for r in records if r.get(field) is not None]
        if present:
            table = report.pivot(present, value=field)
            written += [report.write_markdown(table, out_dir / f"{field}.md", title,
                                              percent=field != "rtf", best=best),
                        report.write_csv(table, out_dir / f"{field}.csv")]
    per_language = [{**r, "language": lang, "metric": part["metric"], "rate": part["rate"]}
                    for r in records for lang, part in (r.get("by_language") or {}).items()]
    if per_language:
        table = report.pivot(per_language, row_fields=("test_set", "condition", "language",
                                                       "metric"))
        written += [report.write_markdown(table, out_dir / "error_rates_by_language.md",
                                          "Error rate by language (%)"),
                    report.write_csv(table, out_dir / "error_rates_by_language.csv")]
    utterances = [u for r in records for u in r.get("utterances", [])]
    written.append(report.plot_by_duration(utterances, out_dir / "error_rate_by_duration.png"))
    written.append(report.plot_by_snr(utterances, out_dir / "error_rate_by_snr.png"))
    return written
