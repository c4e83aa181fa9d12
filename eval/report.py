"""Report tables (Markdown, CSV) and plots (PNG), laid out like the Fun-ASR report's tables.

Section 6 of the report compares systems side by side: one column per system, one row per test
set (or condition: offline vs streaming, clean vs noisy). :func:`pivot` builds that layout from
flat result records; :func:`write_markdown` and :func:`write_csv` write it; the plot functions
draw error rate by condition, by duration bucket and by SNR bucket (matplotlib, Agg backend, no
display needed).

A result record is a dict with at least ``system``, the row fields (default ``test_set`` and
``condition``) and the value field (default ``rate``). Per-utterance records for the bucket
plots carry ``system``, ``errors``, ``reference_tokens`` and the bucketed field (``duration``,
``snr_db``); rates per bucket are pooled (errors / tokens), not averaged per utterance.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from funfactory.eval.scoring import error_rate

DURATION_EDGES_S = (0.0, 2.0, 5.0, 10.0, 20.0, math.inf)
SNR_EDGES_DB = (-math.inf, 0.0, 5.0, 10.0, 15.0, 20.0, math.inf)


@dataclass(frozen=True)
class Table:
    row_fields: tuple[str, ...]
    columns: tuple[str, ...]  # systems
    rows: tuple[tuple[tuple[str, ...], tuple[float | None, ...]], ...]


def pivot(records: Iterable[Mapping], row_fields: Sequence[str] = ("test_set", "condition"),
          value: str = "rate", column: str = "system") -> Table:
    """Systems as columns, ``row_fields`` as rows; a missing combination is None."""
    row_fields = tuple(row_fields)
    cells: dict[tuple[str, ...], dict[str, float]] = {}
    columns: list[str] = []
    for record in records:
        row = tuple(str(record.get(f, "")) for f in row_fields)
        system = str(record[column])
        if system not in columns:
            columns.append(system)
        cells.setdefault(row, {})[system] = float(record[value])
    rows = tuple((row, tuple(cells[row].get(c) for c in columns)) for row in cells)
    return Table(row_fields, tuple(columns), rows)


def _cell(value: float | None, percent: bool) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}" if percent else f"{value:.4g}"


def to_markdown(table: Table, percent: bool = True, best: str | None = "min") -> str:
    """A Markdown table; values in percent if ``percent``; the best per row in bold (``best``:
    "min" for error rates and RTF, "max" for recall and accuracy, None for no bold)."""
    header = [*table.row_fields, *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, values in table.rows:
        present = [v for v in values if v is not None]
        winner = ({"min": min, "max": max}[best](present)
                  if best and len(present) > 1 else None)
        cells = [f"**{_cell(v, percent)}**" if v is not None and v == winner else _cell(v, percent)
                 for v in values]
        lines.append("| " + " | ".join([*row, *cells]) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(table: Table, path: str | Path, title: str | None = None,
                   percent: bool = True, best: str | None = "min") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (f"## {title}\n\n" if title else "") + to_markdown(table, percent, best)
    path.write_text(text, encoding="utf-8")
    return path


def write_csv(table: Table, path: str | Path) -> Path:
    """Raw values (fractions, not percent), empty cell where a system lacks a row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*table.row_fields, *table.columns])
        for row, values in table.rows:
            writer.writerow([*row, *("" if v is None else repr(v) for v in values)])
    return path


def bucket_label(low: float, high: float, unit: str) -> str:
    if math.isinf(low):
        return f"<{high:g}{unit}"
    if math.isinf(high):
        return f">={low:g}{unit}"
    return f"{low:g}-{high:g}{unit}"


def bucketed_rates(utterances: Iterable[Mapping], field: str, edges: Sequence[float],
                   unit: str = "") -> dict[str, dict[str, float]]:
    """Pooled error rate per system and bucket of ``field``; utterances without it are skipped."""
    labels = [bucket_label(lo, hi, unit) for lo, hi in zip(edges, edges[1:])]
    totals: dict[str, dict[str, list[int]]] = {}
    for u in utterances:
        value = u.get(field)
        if value is None:
            continue
        for label, lo, hi in zip(labels, edges, edges[1:]):
            if lo <= value < hi:
                bucket = totals.setdefault(str(u["system"]), {}).setdefault(label, [0, 0])
                bucket[0] += int(u["errors"])
                bucket[1] += int(u["reference_tokens"])
                break
    return {system: {label: error_rate(*buckets[label]) for label in labels if label in buckets}
            for system, buckets in totals.items()}


def _grouped_bars(series: Mapping[str, Mapping[str, float]], categories: Sequence[str],
                  path: str | Path, title: str, xlabel: str, ylabel: str = "error rate (%)") -> Path:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    systems = list(series)
    width = 0.8 / max(len(systems), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(categories) + 2), 3.6), dpi=110)
    for i, system in enumerate(systems):
        xs = [c + (i - (len(systems) - 1) / 2) * width for c in range(len(categories))]
        ys = [100 * series[system].get(cat, math.nan) for cat in categories]
        ax.bar(xs, ys, width=width, label=system)
    ax.set_xticks(range(len(categories)), categories, rotation=20, ha="right")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if systems:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_by_condition(table: Table, path: str | Path, title: str = "Error rate by condition") -> Path:
    categories = [" / ".join(x for x in row if x) for row, _ in table.rows]
    series = {system: {cat: values[i] for cat, (_, values) in zip(categories, table.rows)
                       if values[i] is not None}
              for i, system in enumerate(table.columns)}
    return _grouped_bars(series, categories, path, title, "test set / condition")


def plot_by_duration(utterances: Iterable[Mapping], path: str | Path,
                     edges: Sequence[float] = DURATION_EDGES_S) -> Path:
    rates = bucketed_rates(utterances, "duration", edges, "s")
    categories = [bucket_label(lo, hi, "s") for lo, hi in zip(edges, edges[1:])]
    return _grouped_bars(rates, categories, path, "Error rate by duration", "duration bucket")


def plot_by_snr(utterances: Iterable[Mapping], path: str | Path,
                edges: Sequence[float] = SNR_EDGES_DB) -> Path:
    rates = bucketed_rates(utterances, "snr_db", edges, "dB")
    categories = [bucket_label(lo, hi, "dB") for lo, hi in zip(edges, edges[1:])]
    return _grouped_bars(rates, categories, path, "Error rate by SNR", "SNR bucket")
