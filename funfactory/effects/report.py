"""The effects table (Markdown and JSON), one bar chart per experiment, and the README block
between `<!-- effects:start -->` and `<!-- effects:end -->`."""

from __future__ import annotations

import json
from pathlib import Path

from funfactory.errors import FunfactoryError

START, END = "<!-- effects:start -->", "<!-- effects:end -->"


def _counts(row: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in row["utterances"].items())


def _verdict(row: dict) -> str:
    return "yes" if row["met"] else "**no**"


def markdown(rows: list[dict], header: dict, order=()) -> str:
    lines = [f"Written {header['date']}: plan `{header['plan']}`, model size "
             f"`{header['model_size']}`, seed {header['seed']}; the last process ran "
             f"{header['wall_minutes']} minutes on {header['cores']} cores. Steps per run: "
             f"{header['steps']}.", "",
             "| experiment (report section) | metric | baseline | treatment | change | target met "
             "| utterances |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['experiment']} ({row['section']}) | not run: {row['error']} "
                         "| | | | | |")
            continue
        lines.append(f"| {row['experiment']} ({row['section']}) | {row['metric']} | "
                     f"{row['baseline_name']}: {row['baseline']} | {row['treatment_name']}: "
                     f"{row['treatment']} | {row['change']} | {_verdict(row)} (target: "
                     f"{row['target']}) | {_counts(row)} |")
    done = {r.get("key") for r in rows}
    lines += [f"| {key} | not run | | | | | |" for key in order if key not in done]
    return "\n".join(lines) + "\n"


def bar_chart(row: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.bar([row["baseline_name"], row["treatment_name"]], [row["baseline"], row["treatment"]],
           color=["#999999", "#3b75af"])
    ax.set_title(f"{row['experiment']} ({row['section']})", fontsize=9)
    ax.set_ylabel(row["metric"], fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def merged(out: Path, rows: list[dict], order) -> list[dict]:
    """`rows` with the rows of experiments an earlier run in `out` finished and this one did
    not run, in `order` (so `--only X` updates X's row and keeps the others)."""
    path = out / "effects.json"
    earlier = json.loads(path.read_text(encoding="utf-8"))["experiments"] if path.is_file() else []
    ran = {r["key"] for r in rows}
    kept = [r for r in earlier if r.get("key") in order and r["key"] not in ran]
    return sorted(kept + rows, key=lambda r: list(order).index(r["key"]))


def write(out: Path, rows: list[dict], header: dict, order=()) -> str:
    """effects.md, effects.json and one PNG per finished experiment under `out`; experiments
    of `order` with no row are listed as not run."""
    table = markdown(rows, header, order)
    (out / "effects.md").write_text("# Data effects in miniature\n\n" + table, encoding="utf-8")
    for row in rows:
        if "error" not in row:
            slug = row["experiment"].lower().replace(" ", "-")
            row["png"] = str(bar_chart(row, out / f"effects-{slug}.png").relative_to(out))
    (out / "effects.json").write_text(json.dumps({**header, "experiments": rows}, indent=2,
                                                 ensure_ascii=False), encoding="utf-8")
    return table


def update_readme(readme: Path, table: str) -> None:
    """Replace the text between the effects markers; the README must already hold both."""
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text or text.index(START) > text.index(END):
        raise FunfactoryError(f"{readme} has no '{START}' ... '{END}' block: add both markers "
                              "where the effects table belongs")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(f"{head}{START}\n{table}{END}{tail}", encoding="utf-8")
