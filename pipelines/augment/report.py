"""The augment run's report: counts, SNR statistics, an SNR histogram and spectrograms of clean,
noisy and noise-only examples (PNG), so a data engineer sees what the noise did."""

from __future__ import annotations

import collections
import io
import json
from pathlib import Path

import numpy as np

from funfactory.shards import storage

SAMPLE_RATE = 16000


def summarize(rows: list[dict], rejects: list[dict], config) -> dict:
    snrs = np.array([r["snr_db"] for r in rows if r["kind"] == "noise"], np.float64)
    return {
        "samples": len(rows),
        "by_kind": dict(collections.Counter(r["kind"] for r in rows)),
        "noise_clips_used": dict(sorted(collections.Counter(
            r["noise_id"] for r in rows if r["noise_id"]).items())),
        "noise_splits_used": sorted({r["noise_split"] for r in rows if r["noise_split"]}),
        "snr_db": {"configured": vars(config.snr), "count": int(snrs.size),
                   "mean": float(snrs.mean()) if snrs.size else None,
                   "std": float(snrs.std()) if snrs.size else None,
                   "min": float(snrs.min()) if snrs.size else None,
                   "max": float(snrs.max()) if snrs.size else None},
        "rejects": dict(collections.Counter(f"{r['stage']}/{r['reason']}" for r in rejects)),
        "hours": round(sum(r["duration"] for r in rows) / 3600, 4),
    }


def _save(fig, path, dpi: int) -> None:
    import matplotlib.pyplot as plt

    image = io.BytesIO()
    fig.savefig(image, dpi=dpi, format="png")
    plt.close(fig)
    storage.write_bytes(path, image.getvalue())


def plot_snr_histogram(rows: list[dict], config, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    snrs = np.array([r["snr_db"] for r in rows if r["kind"] == "noise"], np.float64)
    cfg = config.snr
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if snrs.size:
        ax.hist(snrs, bins=np.arange(cfg.min_db, cfg.max_db + 2.5, 2.5), density=True,
                alpha=0.7, label=f"drawn (n={snrs.size}, mean {snrs.mean():.1f}, "
                                 f"std {snrs.std():.1f})")
    grid = np.linspace(cfg.min_db, cfg.max_db, 200)
    if cfg.std_db > 0:
        pdf = np.exp(-0.5 * ((grid - cfg.mean_db) / cfg.std_db) ** 2) / (cfg.std_db * np.sqrt(2 * np.pi))
        ax.plot(grid, pdf, "k--", label=f"N({cfg.mean_db:g}, {cfg.std_db:g}) configured")
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel("density")
    ax.set_title("SNR of noisy samples")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path, 100)


def _examples(out_dir, urls: list[str], rows: list[dict], per_kind: int):
    from funfactory.shards.audio import decode_flac
    from funfactory.shards.index import read_index
    from funfactory.shards.reader import ShardReader, read_member

    noisy = [r for r in rows if r["kind"] == "noise"][:per_kind]
    quiet = [r for r in rows if r["kind"] == "noise_only"][:per_kind]
    wanted = {r["parent_key"] for r in noisy}
    clean: dict[str, np.ndarray] = {}
    for sample in ShardReader(urls):
        if sample.key in wanted:
            clean[sample.key] = sample.audio
            if len(clean) == len(wanted):
                break
    index = {row["key"]: row for row in read_index(out_dir).to_pylist()}

    def audio_of(key: str) -> np.ndarray:
        row = index[key]
        return decode_flac(read_member(storage.join(out_dir, row["shard"]), row["audio_offset"],
                                       row["audio_size"]))[0]

    panels = []
    for r in noisy:
        if r["parent_key"] in clean:
            panels.append((f"clean {r['parent_key']}", clean[r["parent_key"]]))
            panels.append((f"noisy {r['noise_id']} SNR {r['snr_db']:.1f} dB", audio_of(r["key"])))
    for r in quiet:
        panels.append((f"noise-only {r['noise_id']} (label empty)", audio_of(r["key"])))
    return panels


def plot_spectrograms(panels: list[tuple[str, np.ndarray]], path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.signal import spectrogram

    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 1.8 * len(panels)), squeeze=False)
    for ax, (title, audio) in zip(axes[:, 0], panels):
        freqs, times, power = spectrogram(audio, fs=SAMPLE_RATE, nperseg=400, noverlap=240)
        ax.pcolormesh(times, freqs / 1000, 10 * np.log10(power + 1e-12), shading="auto",
                      vmin=-110, vmax=-30, cmap="magma")
        ax.set_title(title, fontsize=8)
        ax.set_ylabel("kHz", fontsize=7)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("seconds", fontsize=7)
    fig.tight_layout()
    _save(fig, path, 90)


def write_report(out_dir: Path | str, folder: Path | str, urls: list[str], rows: list[dict],
                 rejects: list[dict], config) -> dict:
    """Write augment-summary.json, snr-histogram.png and spectrograms.png into `folder` (a local
    path or URL)."""
    summary = summarize(rows, rejects, config)
    plot_snr_histogram(rows, config, storage.join(folder, "snr-histogram.png"))
    summary["files"] = ["snr-histogram.png"]
    panels = _examples(out_dir, urls, rows, config.report_examples)
    if panels:
        plot_spectrograms(panels, storage.join(folder, "spectrograms.png"))
        summary["files"].append("spectrograms.png")
    storage.write_bytes(storage.join(folder, "augment-summary.json"),
                        json.dumps(summary, indent=2, ensure_ascii=False).encode("utf-8"))
    return summary
