"""`funfactory shards verify`: every shard checked against its index.

For each split index: the shards it names exist and are complete tars; each holds exactly the
index's samples (member count, unique keys), each audio member has the sha256 the index recorded
and decodes, each JSON passes the schema and agrees with its index row. Shards that no index
names and half-written `.partial` files are reported too.

A folder with no index gets a ``no_index`` problem and every tar in it is still read: members
checked for safety (:mod:`funfactory.shards.safety`), JSON against the schema, audio decoded, keys
unique across the folder. The report counts samples and problems per shard either way.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path

from funfactory.shards import reader as shard_reader
from funfactory.shards.audio import sha256
from funfactory.shards.index import find_indexes, read_index


@dataclass
class Problem:
    shard: str
    key: str | None
    reason: str
    detail: str

    def __str__(self) -> str:
        where = self.shard + (f" [{self.key}]" if self.key else "")
        return f"{where}: {self.reason}: {self.detail}"


@dataclass
class VerifyReport:
    shards: int = 0
    samples: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    per_shard: dict[str, dict] = field(default_factory=dict)  # name -> {samples, problems}

    @property
    def ok(self) -> bool:
        return not self.problems

    def by_reason(self) -> dict[str, int]:
        return dict(collections.Counter(p.reason for p in self.problems))


def verify(folder: str | Path) -> VerifyReport:
    folder = Path(folder)
    report = VerifyReport()
    tars = sorted(p.name for p in folder.glob("*.tar"))
    for partial in sorted(folder.glob(".*.partial")):
        report.warnings.append(Problem(partial.name, None, "partial_shard",
                                       "left by an interrupted write; readers ignore it"))
    if not find_indexes(folder):
        report.problems.append(Problem(str(folder), None, "no_index",
                                       f"no Parquet index beside the shards; {len(tars)} tars "
                                       "checked for safety, schema and audio only"))
        seen: dict[str, str] = {}
        for tar in tars:
            for key in _verify_shard(folder / tar, None, report):
                if key in seen:
                    report.problems.append(Problem(tar, key, "duplicate_key",
                                                   f"also in {seen[key]}"))
                    report.per_shard[tar]["problems"] += 1
                seen.setdefault(key, tar)
        return report
    rows = read_index(folder).to_pylist()
    by_shard: dict[str, list[dict]] = collections.defaultdict(list)
    seen_keys: dict[str, str] = {}
    for row in rows:
        if row["key"] in seen_keys:
            report.problems.append(Problem(row["shard"], row["key"], "duplicate_key",
                                           f"also in {seen_keys[row['key']]}"))
        seen_keys.setdefault(row["key"], row["shard"])
        by_shard[row["shard"]].append(row)
    for tar in tars:
        if tar not in by_shard:
            report.problems.append(Problem(tar, None, "unindexed_shard",
                                           "no index row names this shard"))
    for shard, expected in sorted(by_shard.items()):
        _verify_shard(folder / shard, expected, report)
    return report


def _verify_shard(path: Path, expected: list[dict] | None, report: VerifyReport) -> set[str]:
    """Check one shard (against its index rows, unless ``expected`` is None); returns its keys."""
    report.shards += 1
    samples, problems = report.samples, len(report.problems)
    found = _check_shard(path, expected, report)
    report.per_shard[path.name] = {"samples": report.samples - samples,
                                   "problems": len(report.problems) - problems}
    return set(found)


def _check_shard(path: Path, expected: list[dict] | None,
                 report: VerifyReport) -> collections.Counter[str]:
    found: collections.Counter[str] = collections.Counter()
    if not path.exists():
        report.problems.append(Problem(path.name, None, "missing_shard",
                                       f"index lists {len(expected or [])} samples in it"))
        return found
    reader = shard_reader.ShardReader([str(path)])
    rows = {r["key"]: r for r in expected or []}
    for sample in reader:
        found[sample.key] += 1
        report.samples += 1
        if expected is None:
            continue
        row = rows.get(sample.key)
        if row is None:
            report.problems.append(Problem(path.name, sample.key, "not_in_index",
                                           "sample in shard but not in its index"))
            continue
        if sha256(sample.flac) != row["audio_sha256"]:
            report.problems.append(Problem(path.name, sample.key, "audio_sha256",
                                           "audio bytes differ from the index's sha256"))
        for name in ("text", "language", "task"):
            if sample.meta[name] != row[name]:
                report.problems.append(Problem(path.name, sample.key, "index_mismatch",
                                               f"{name} is {sample.meta[name]!r} in the shard, "
                                               f"{row[name]!r} in the index"))
    failed = set()
    for err in reader.error_log:
        report.problems.append(Problem(path.name, err.key, err.reason, err.detail))
        failed.add(err.key)
    for key, count in found.items():
        if count > 1:
            report.problems.append(Problem(path.name, key, "duplicate_key",
                                           f"{count} samples with this key in the shard"))
    if expected is None:
        return found
    missing = [k for k in rows if k not in found and k not in failed]
    if missing and not any(e.reason == "broken_shard" for e in reader.error_log):
        for key in missing:
            report.problems.append(Problem(path.name, key, "missing_sample",
                                           "in the index but not in the shard"))
    elif missing:
        report.problems.append(Problem(path.name, None, "missing_sample",
                                       f"{len(missing)} indexed samples unreadable after the "
                                       "break (truncated or corrupt shard)"))
    return found
