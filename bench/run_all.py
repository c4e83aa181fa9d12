"""`make bench`: every benchmark in one run, one table, written into the README.

Each `bench/bench_*.py` has `main() -> list[dict]` rows (figure and anchor measured in the same
run). The table replaces the README's block between the bench markers, verbatim as printed.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

import bench

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _number(value: float) -> str:
    return f"{value:.2f}" if abs(value) >= 1 or value == 0 else f"{value:.3g}"


def table(rows: list[dict]) -> str:
    lines = ["| benchmark | figure | value | anchor (same run) | anchor value | ratio |",
             "| --- | --- | ---: | --- | ---: | ---: |"]
    for r in rows:
        unit = f" {r['unit']}" if r.get("unit") else ""
        lines.append(f"| {r['benchmark']} | {r['figure']} | {_number(r['value'])}{unit} | "
                     f"{r['anchor']} | {_number(r['anchor_value'])} | {r['ratio']:.3f} |")
    return "\n".join(lines)


def main(names: list[str] | None = None) -> int:
    modules = names or sorted(m.name for m in pkgutil.iter_modules(bench.__path__)
                              if m.name.startswith("bench_"))
    rows, failed = [], []
    for name in modules:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            rows += importlib.import_module(f"bench.{name}").main()
        except Exception as e:  # one broken benchmark must not hide the others' figures
            failed.append(f"{name}: {type(e).__name__}: {e}")
            print(f"   FAILED: {failed[-1]}", flush=True)
        print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
    out = ROOT / "bench-out"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    write_readme(rows, update=not names)
    for f in failed:
        print(f"benchmark failed: {f}", file=sys.stderr)
    return 1 if failed else 0


def write_readme(rows: list[dict], update: bool = True) -> None:
    """Print the table, keep it in bench-out/results.md and, for a full run, in the README."""
    text = table(rows)
    print(text)
    (ROOT / "bench-out" / "results.md").write_text(text + "\n")
    readme = ROOT / "README.md"
    content = readme.read_text(encoding="utf-8")
    if START in content and END in content and update:
        head, rest = content.split(START, 1)
        _, tail = rest.split(END, 1)
        machine = "2-core CPU machine, no GPU"
        block = (f"{START}\nMeasured by `make bench` on a {machine} "
                 f"({time.strftime('%Y-%m-%d')}):\n\n{text}\n{END}")
        readme.write_text(head + block + tail, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or None))
