"""The shard sink: completed units -> deterministic WebDataset shards, from Beam.

``pack_shards(work_dir, out_dir, dataset, split, max_count=, max_bytes=, options=)``:

1. plans shards in the driver from the unit manifests alone (no audio read): units in id order,
   samples in key order, cut into consecutive shards under ``max_count`` samples and
   ``max_bytes`` bytes (the tar sizes the shard writer will produce);
2. runs a Beam pipeline ``Create(plans) | ParDo(WriteShard)``: each plan becomes exactly one
   shard ``{dataset}-{split}-{index:06d}.tar`` through :class:`funfactory.shards.writer.
   ShardWriter` (temporary name, then rename; its index fragment after it), on any worker;
3. removes shards of this split left over beyond the plan by an earlier, larger run, and merges
   the Parquet index.

The same completed units always give byte-identical shards, so packing after a resumed run
equals packing after an uninterrupted one, and packing can itself be killed and rerun.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import apache_beam as beam

from funfactory.pipelines.common.runner import beam_options, run_and_wait
from funfactory.pipelines.common.units import read_manifests, read_part_samples
from funfactory.shards.index import FRAGMENTS, merge_index
from funfactory.shards.keys import parse_shard_name
from funfactory.shards.writer import DEFAULT_MAX_BYTES, DEFAULT_MAX_COUNT, ShardWriter


def _padded(size: int) -> int:
    return (size + tarfile.BLOCKSIZE - 1) // tarfile.BLOCKSIZE * tarfile.BLOCKSIZE


def _member_bytes(sample: dict) -> int:
    return _padded(sample["json_bytes"]) + _padded(sample["flac_bytes"]) + 2 * tarfile.BLOCKSIZE


def plan_shards(manifests: list[dict], max_count: int = DEFAULT_MAX_COUNT,
                max_bytes: int = DEFAULT_MAX_BYTES) -> list[dict]:
    """Shard plans ``{"index", "units": [[unit, [keys]], ...]}`` (module docstring, step 1)."""
    plans: list[dict] = []
    current: list[list] = []
    count = size = 0
    for manifest in sorted(manifests, key=lambda m: m["unit"]):
        for sample in sorted(manifest["samples"], key=lambda s: s["key"]):
            need = _member_bytes(sample)
            if current and (count >= max_count or size + need > max_bytes - 2 * 10240):
                plans.append({"index": len(plans), "units": current})
                current, count, size = [], 0, 0
            if not current or current[-1][0] != manifest["unit"]:
                current.append([manifest["unit"], []])
            current[-1][1].append(sample["key"])
            count += 1
            size += need
    if current:
        plans.append({"index": len(plans), "units": current})
    return plans


class WriteShard(beam.DoFn):
    """One shard plan -> one complete shard (and its index fragment); yields the shard name."""

    def __init__(self, work_dir: str, out_dir: str, dataset: str, split: str):
        self.work_dir, self.out_dir = str(work_dir), str(out_dir)
        self.dataset, self.split = dataset, split

    def process(self, plan):
        total = sum(len(keys) for _, keys in plan["units"])
        writer = ShardWriter(self.out_dir, self.dataset, self.split, max_count=total,
                             max_bytes=1 << 62, start_index=plan["index"], merge=False)
        with writer:
            for unit, keys in plan["units"]:
                for meta, flac in read_part_samples(self.work_dir, unit, keys):
                    writer.write_encoded(meta, flac)
        beam.metrics.Metrics.counter("sink", "shards").inc()
        yield writer.shards[0].name


def remove_stale_shards(out_dir: str | Path, dataset: str, split: str, keep: int) -> list[Path]:
    """Delete shards (and index fragments) of ``dataset-split`` with an index >= ``keep``."""
    removed = []
    for path in sorted(Path(out_dir).glob(f"{dataset}-{split}-*.tar")):
        parsed = parse_shard_name(path.name)
        if parsed and parsed[:2] == (dataset, split) and parsed[2] >= keep:
            path.unlink()
            (Path(out_dir) / FRAGMENTS / (path.stem + ".parquet")).unlink(missing_ok=True)
            removed.append(path)
    return removed


def pack_shards(work_dir: str | Path, out_dir: str | Path, dataset: str, split: str, *,
                max_count: int = DEFAULT_MAX_COUNT, max_bytes: int = DEFAULT_MAX_BYTES,
                options=None, units: set[str] | None = None) -> list[str]:
    """Pack every completed unit of ``work_dir`` (or only ``units``) into shards in ``out_dir``;
    returns the shard names."""
    manifests = [m for m in read_manifests(work_dir) if units is None or m["unit"] in units]
    plans = plan_shards(manifests, max_count, max_bytes)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    if plans:
        pipeline = beam.Pipeline(options=options or beam_options())
        _ = (pipeline | "ShardPlans" >> beam.Create(plans)
             | "WriteShards" >> beam.ParDo(WriteShard(str(work_dir), str(out_dir), dataset,
                                                      split)))
        run_and_wait(pipeline)
    remove_stale_shards(out_dir, dataset, split, len(plans))
    merge_index(out_dir, dataset, split)
    return [f"{dataset}-{split}-{plan['index']:06d}.tar" for plan in plans]
