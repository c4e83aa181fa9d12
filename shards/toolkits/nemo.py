"""NeMo ASR manifests and tarred audio datasets.

NeMo's ASR data layers read a JSON-lines manifest, one utterance a line, with ``audio_filepath``,
``duration`` and ``text`` (``offset`` optional; ``lang`` for multilingual models). A tarred
dataset (NeMo's ``scripts/speech_recognition/convert_to_tarred_audio_dataset.py`` writes one)
puts the audio in ``audio_0.tar`` ... ``audio_{N-1}.tar`` with every file at the top level of
its tar; ``tarred_audio_manifest.json`` then names each file by its member name in
``audio_filepath`` and the tar holding it in ``shard_id``; ``sharded_manifests/manifest_{i}.json``
holds the lines of tar i, and ``metadata.yaml`` describes the set. A trainer points
``train_ds.is_tarred=true``, ``train_ds.manifest_filepath`` at the manifest and
``train_ds.tarred_audio_filepaths`` at ``audio__OP_0..N-1_CL_.tar``.

Export writes that layout: members are ``KEY.flac``, the shard's FLAC bytes copied unchanged;
each line carries ``audio_filepath``, ``duration`` (exact to the sample), ``text``, ``lang``,
``shard_id`` and our ``key``. Import reads a tarred manifest (its tars beside it, or a pattern
given) tar by tar, or a manifest of audio files (paths relative to the manifest).
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import braceexpand

from funfactory.errors import FunfactoryError
from funfactory.shards.safety import check_member
from funfactory.shards.toolkits.common import (Exporter, ExternalUtterance, flac_frames,
                                               json_lines, require_file)
from funfactory.shards.writer import add_member

MANIFEST = "tarred_audio_manifest.json"


class NemoExporter(Exporter):
    def __init__(self, out_dir: Path, shard_size: int = 1000):
        super().__init__(out_dir)
        if shard_size < 1:
            raise FunfactoryError(f"NeMo shard size {shard_size}: must be at least 1")
        self.shard_size = shard_size
        (self.out / "sharded_manifests").mkdir(parents=True, exist_ok=True)
        self.manifest = open(self.out / MANIFEST, "w", encoding="utf-8")
        self.shard_id = -1
        self.in_shard = 0
        self.tar: tarfile.TarFile | None = None
        self.shard_manifest = None
        self.counts: list[int] = []
        self.seconds = 0.0

    def _next_shard(self) -> None:
        self._finish_shard()
        self.shard_id += 1
        self.tar = tarfile.open(self.out / f"audio_{self.shard_id}.tar", "w",
                                format=tarfile.PAX_FORMAT)
        self.shard_manifest = open(self.out / "sharded_manifests" /
                                   f"manifest_{self.shard_id}.json", "w", encoding="utf-8")
        self.in_shard = 0

    def _finish_shard(self) -> None:
        if self.tar is not None:
            self.tar.close()
            self.shard_manifest.close()
            self.counts.append(self.in_shard)

    def add(self, sample) -> None:
        frames, rate = flac_frames(sample)
        if self.tar is None or self.in_shard >= self.shard_size:
            self._next_shard()
        member = f"{sample.key}.flac"
        add_member(self.tar, member, sample.flac)
        line = json.dumps({"audio_filepath": member, "duration": frames / rate,
                           "text": sample.meta["text"], "lang": sample.meta["language"],
                           "shard_id": self.shard_id, "key": sample.key}, ensure_ascii=False)
        self.manifest.write(line + "\n")
        self.shard_manifest.write(line + "\n")
        self.in_shard += 1
        self.seconds += frames / rate

    def close(self) -> list[Path]:
        self._finish_shard()
        self.manifest.close()
        import yaml

        metadata = {"num_samples_per_shard": self.counts, "dataset_config": {
            "num_shards": len(self.counts), "shuffle": False, "keep_files_together": False,
            "sort_in_shards": False, "max_duration": None, "min_duration": None},
            "history": [{"tool": "funfactory shards export --format nemo",
                         "samples": sum(self.counts), "hours": round(self.seconds / 3600, 4)}]}
        (self.out / "metadata.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False),
                                                encoding="utf-8")
        tars = [self.out / f"audio_{i}.tar" for i in range(len(self.counts))]
        return [self.out / MANIFEST, self.out / "metadata.yaml", *tars]


def tar_paths(pattern: str) -> list[str]:
    """NeMo's ``audio__OP_0..7_CL_.tar`` (or brace ``audio_{0..7}.tar``) as a list of paths."""
    return list(braceexpand.braceexpand(pattern.replace("_OP_", "{").replace("_CL_", "}")))


def _lines(path: Path) -> Iterator[tuple[int, dict]]:
    for n, entry in json_lines(path):
        if not isinstance(entry, dict) or not isinstance(entry.get("audio_filepath"), str):
            raise FunfactoryError(f"{path}:{n}: a NeMo manifest line needs 'audio_filepath'")
        yield n, entry


def is_tarred(manifest: Path) -> bool:
    """A manifest whose first line has a ``shard_id`` and no audio file at its path."""
    for _, entry in _lines(manifest):
        return "shard_id" in entry and not (manifest.parent / entry["audio_filepath"]).is_file()
    return False


def _utterance(entry: dict, uri: str, **audio) -> ExternalUtterance:
    stem = re.sub(r"\.[A-Za-z0-9]+$", "", Path(entry["audio_filepath"]).name)
    offset = float(entry.get("offset") or 0.0)
    key = entry.get("key") or (f"{stem}_{int(round(offset * 1000)):08d}" if offset else stem)
    duration = entry.get("duration")
    return ExternalUtterance(
        id=str(key), text=str(entry.get("text") or ""), uri=uri, offset=offset,
        duration=float(duration) if duration is not None else None,
        language=str(entry.get("lang") or entry.get("language") or ""), **audio)


def read(manifest: str | Path, tars: str | None = None) -> Iterator[ExternalUtterance]:
    """The utterances of a NeMo manifest (module docstring); `tars` overrides where a tarred
    manifest's tars are (NeMo's ``_OP_``/``_CL_`` pattern or braces)."""
    manifest = require_file(Path(manifest), "NeMo manifest",
                            "point at a NeMo manifest (.json lines with audio_filepath)")
    if not is_tarred(manifest):
        for _, entry in _lines(manifest):
            path = Path(entry["audio_filepath"])
            path = path if path.is_absolute() else manifest.parent / path
            yield _utterance(entry, f"{path.resolve().as_uri()}#{entry.get('offset') or 0}",
                             path=str(path))
        return
    yield from _read_tarred(manifest, tars)


def _read_tarred(manifest: Path, tars: str | None) -> Iterator[ExternalUtterance]:
    """Tar by tar, each joined with its lines: from ``sharded_manifests/`` where present (one
    tar's lines in memory at a time), else from the whole manifest grouped by ``shard_id``."""
    by_shard: dict[int, list[dict]] = {}
    sharded = manifest.parent / "sharded_manifests"
    if not sharded.is_dir():
        for _, entry in _lines(manifest):
            by_shard.setdefault(int(entry["shard_id"]), []).append(entry)
    shard_ids = sorted(by_shard) if by_shard else sorted(
        int(p.stem.split("_")[-1]) for p in sharded.glob("manifest_*.json"))
    paths = tar_paths(tars) if tars else None
    for shard_id in shard_ids:
        entries = by_shard.pop(shard_id, None)
        if entries is None:
            entries = [e for _, e in _lines(sharded / f"manifest_{shard_id}.json")]
        if paths is not None and shard_id >= len(paths):
            raise FunfactoryError(f"{manifest}: shard_id {shard_id} but --tars {tars!r} names "
                                  f"only {len(paths)} tars")
        tar_path = Path(paths[shard_id]) if paths else manifest.parent / f"audio_{shard_id}.tar"
        if not tar_path.is_file():
            raise FunfactoryError(f"{manifest}: shard {shard_id}'s tar {tar_path} does not "
                                  "exist; pass its location with --tars (NeMo's "
                                  "audio__OP_0..N_CL_.tar pattern)")
        wanted: dict[str, list[dict]] = {}
        for entry in entries:
            wanted.setdefault(Path(entry["audio_filepath"]).name, []).append(entry)
        with tarfile.open(tar_path, "r|") as tar:
            for member in tar:
                check_member(member, str(tar_path))
                if member.name not in wanted:
                    continue
                data = tar.extractfile(member).read()
                for entry in wanted.pop(member.name):
                    yield _utterance(entry, f"{tar_path.resolve().as_uri()}#{member.name}",
                                     data=data)
        for name, missing in wanted.items():
            for entry in missing:
                yield _utterance(entry, f"{tar_path.resolve().as_uri()}#{name}")
