"""The shard sink: committed unit parts -> deterministic WebDataset shards, packed incrementally
(docs/architecture.md, executor).

``pack_shards(work_dir, out_dir, dataset, split, unit_ids, max_count=, max_bytes=)``:

1. plans shards from the unit manifests alone (no audio read): the job's units in id order,
   samples in key order, cut into consecutive shards under ``max_count`` samples and
   ``max_bytes`` bytes. The plan stops at the first unit not committed yet: every shard that
   closes before it is *final* (its content depends only on units before it), and once every
   unit is committed the last, partial shard is final too. This unit -> shard assignment does not
   depend on the order in which units finished, so shards packed across a killed and resumed
   job equal an uninterrupted job's, byte for byte;
2. writes each final shard that is not in ``out_dir`` yet (or whose tar does not match its index
   fragment's size and sha256, or holds other keys) through
   :class:`funfactory.shards.writer.ShardWriter`, copying samples from the parts by offset; a
   rerun that finds nothing new writes nothing. The work folder's ledger
   (``packed-{dataset}-{split}.json``) keeps the sha256 of every shard this job wrote or checked
   and the units it was packed from. A rerun hashes only shards it has not seen (sizes and
   fragments are always checked), so on an object store a resumed job does not read its whole
   output back (``funfactory shards verify`` re-hashes everything); and it rewrites a shard whose
   units changed (an input rewritten under its old name is a new unit);
3. removes each part whose samples all sit in final shards (the manifest stays: it is the resume
   marker and the report's record), so the work folder does not hold a second copy of the data;
4. with every unit committed, removes shards of this split beyond the plan left by an earlier,
   larger run, and merges the Parquet index when anything changed or the index does not list
   exactly the planned shards (a run killed between its shards and its index).

Packing runs in the driver (a stream copy, no decoding); it may itself be killed and rerun.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field

import pyarrow.parquet as pq

from funfactory.errors import FunfactoryError
from funfactory.pipelines.common.units import part_path, read_part_samples
from funfactory.shards import storage
from funfactory.shards.index import (fragment_path, fragment_problem, fragment_tar_sha256,
                                     index_path, merge_index)
from funfactory.shards.keys import parse_shard_name, shard_name
from funfactory.shards.writer import DEFAULT_MAX_BYTES, DEFAULT_MAX_COUNT, ShardWriter


def _padded(size: int) -> int:
    return (size + tarfile.BLOCKSIZE - 1) // tarfile.BLOCKSIZE * tarfile.BLOCKSIZE


def _member_bytes(sample: dict) -> int:
    return _padded(sample["json_bytes"]) + _padded(sample["flac_bytes"]) + 2 * tarfile.BLOCKSIZE


@dataclass
class ShardPlan:
    index: int
    units: list = field(default_factory=list)  # [[unit, [keys]], ...]

    @property
    def keys(self) -> list[str]:
        return [k for _, keys in self.units for k in keys]


def plan_shards(manifests: dict[str, dict], unit_ids: list[str],
                max_count: int = DEFAULT_MAX_COUNT,
                max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[list[ShardPlan], bool]:
    """``(final shard plans, whether every unit is committed)`` (module docstring, step 1)."""
    plans: list[ShardPlan] = []
    current = ShardPlan(0)
    count = size = 0
    for unit in sorted(unit_ids):
        manifest = manifests.get(unit)
        if manifest is None:
            return plans, False
        for sample in sorted(manifest["samples"], key=lambda s: s["key"]):
            need = _member_bytes(sample)
            if current.units and (count >= max_count or size + need > max_bytes - 2 * 10240):
                plans.append(current)
                current, count, size = ShardPlan(len(plans)), 0, 0
            if not current.units or current.units[-1][0] != unit:
                current.units.append([unit, []])
            current.units[-1][1].append(sample["key"])
            count += 1
            size += need
    if current.units:
        plans.append(current)
    return plans, True


def _shard_is_packed(out_dir: str, name: str, plan: ShardPlan, ledger: dict | None) -> bool:
    """Whether shard `name` holds `plan`: its fragment lists the plan's keys and matches the tar,
    and, where the job's ledger knows the shard, it was packed from the same units (a unit id
    names its input's content, so a shard of the same keys from a rewritten input is stale)."""
    if ledger is not None and ledger["units"] != [unit for unit, _ in plan.units]:
        return False
    if not storage.exists(storage.join(out_dir, name)) or fragment_problem(
            out_dir, name, trusted_sha256=ledger["sha256"] if ledger else None):
        return False
    with storage.open_read(fragment_path(out_dir, name)) as f:
        return pq.read_table(f, columns=["key"]).column("key").to_pylist() == plan.keys


def _write_shard(work_dir: str, out_dir: str, dataset: str, split: str, plan: ShardPlan,
                 manifests: dict[str, dict]) -> None:
    writer = ShardWriter(out_dir, dataset, split, max_count=len(plan.keys), max_bytes=1 << 62,
                         start_index=plan.index, merge=False)
    with writer:
        for unit, keys in plan.units:
            if not storage.exists(part_path(work_dir, unit)):
                raise FunfactoryError(
                    f"shard {shard_name(dataset, split, plan.index)} in {out_dir} is missing or "
                    f"damaged and the part of unit {unit} was already packed and removed from "
                    f"{work_dir}: rerun the job with --restart")
            for meta, flac in read_part_samples(work_dir, manifests[unit], keys):
                writer.write_encoded(meta, flac)


def _indexed_shards(out_dir: str, dataset: str, split: str) -> set[str] | None:
    location = index_path(out_dir, dataset, split)
    if not storage.exists(location):
        return None
    with storage.open_read(location) as f:
        return set(pq.read_table(f, columns=["shard"]).column("shard").to_pylist())


def remove_stale_shards(out_dir, dataset: str, split: str, keep: int) -> list[str]:
    """Delete shards (and index fragments) of ``dataset-split`` with an index >= ``keep``."""
    removed = []
    for path in storage.glob(storage.join(out_dir, f"{dataset}-{split}-*.tar")):
        parsed = parse_shard_name(storage.name_of(path))
        if parsed and parsed[:2] == (dataset, split) and parsed[2] >= keep:
            storage.remove(path)
            storage.remove(fragment_path(out_dir, storage.name_of(path)))
            removed.append(path)
    return removed


def remove_split(out_dir, dataset: str, split: str) -> None:
    """Every shard, fragment and the index of ``dataset-split`` (a job restarted from scratch)."""
    remove_stale_shards(out_dir, dataset, split, 0)
    storage.remove(index_path(out_dir, dataset, split))


@dataclass
class PackResult:
    shards: list[str]  # the final shards' names, in order
    written: list[str]  # those written by this call
    complete: bool  # every unit committed and packed
    parts_removed: int = 0


def pack_shards(work_dir, out_dir, dataset: str, split: str, unit_ids: list[str], manifests:
                list[dict], *, max_count: int = DEFAULT_MAX_COUNT,
                max_bytes: int = DEFAULT_MAX_BYTES) -> PackResult:
    """Pack the final shards of the committed units (module docstring)."""
    work_dir, out_dir = storage.url_of(work_dir), storage.url_of(out_dir)
    storage.makedirs(out_dir)
    by_unit = {m["unit"]: m for m in manifests}
    plans, complete = plan_shards(by_unit, unit_ids, max_count, max_bytes)
    ledger_path = storage.join(work_dir, f"packed-{dataset}-{split}.json")
    ledger = storage.read_json(ledger_path) if storage.exists(ledger_path) else {}
    written, checked = [], {}
    for plan in plans:
        name = shard_name(dataset, split, plan.index)
        if not _shard_is_packed(out_dir, name, plan, ledger.get(name)):
            _write_shard(work_dir, out_dir, dataset, split, plan, by_unit)
            written.append(name)
        checked[name] = {"sha256": fragment_tar_sha256(out_dir, name),
                         "units": [unit for unit, _ in plan.units]}
    if checked != ledger:
        storage.write_json(ledger_path, checked)
    packed_units = {unit for plan in plans for unit, _ in plan.units}
    last_open = None if complete or not plans else plans[-1].units[-1][0]
    removed = 0
    for unit in sorted(packed_units):
        if unit != last_open and by_unit[unit]["part"] is not None \
                and storage.exists(part_path(work_dir, unit)):
            storage.remove(part_path(work_dir, unit))
            removed += 1
    stale = remove_stale_shards(out_dir, dataset, split, len(plans)) if complete else []
    indexed = _indexed_shards(out_dir, dataset, split)
    if written or stale or indexed is None or (complete and indexed != set(checked)):
        merge_index(out_dir, dataset, split,
                    trusted={name: entry["sha256"] for name, entry in checked.items()})
    return PackResult([shard_name(dataset, split, p.index) for p in plans], written, complete,
                      removed)
