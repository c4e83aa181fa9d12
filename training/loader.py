"""The streaming training loader over shards (Fun-ASR sections 4.1-4.3).

Each data-parallel rank and each DataLoader worker on it is one *part* of the data
(`part = rank * num_workers + worker`, `parts = world_size * num_workers`). Per stream and epoch:

1. the stream's shard list is shuffled with a seed of (seed, stream, epoch) - the same order on
   every part;
2. with at least `parts` shards, part p reads shards p, p + parts, ...; with fewer shards every
   part reads all of them and keeps the samples whose running index i has i % parts == p. Either
   way each sample of the epoch goes to exactly one part;
3. language and task weights repeat or drop samples (weight 2.5: two copies, a third with
   probability 0.5; weight 0.3: kept with probability 0.3), decided by a hash of (seed, epoch,
   key) so the decision does not depend on order or resume;
4. a shuffle buffer per stream, then a weighted draw between streams (non-cycling streams end the
   epoch when all are exhausted; cycling ones restart reshuffled);
5. duration buckets fill until one more sample would exceed `max_batch_seconds` of padded audio
   (or `max_batch_size`); partial buckets flush at the end of the epoch. `batch_size > 0` makes
   fixed-size batches in arrival order instead.

Samples travel as FLAC bytes and are decoded (and, for a fraction, noise-augmented) only when
their batch is formed. A worker attaches its state to every batch it yields - stream positions
(shard, sample ordinal), RNG states, and the shuffle buffers and buckets as sample *locations*
(shard, ordinal, copy, key) - so `StreamingLoader.state_dict()` after any batch, saved in a checkpoint,
resumes on exactly the next batch: positions are reopened by streaming each shard to the
ordinal, buffered samples re-read from their shards.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from funfactory.errors import FunfactoryError
from funfactory.shards.audio import decode_flac
from funfactory.shards.reader import ShardReader, expand_urls
from funfactory.training.config import LoaderConfig, StreamConfig

Augmenter = Callable[[np.ndarray, dict, np.random.Generator], tuple[np.ndarray, dict]]


def stable_uniform(*parts) -> float:
    """A uniform number in [0, 1) from a hash of `parts`: the same on every machine and run."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def stable_seed(*parts) -> int:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def repeat_count(weight: float, u: float) -> int:
    """Copies of a sample under an up/down-sampling weight, given a uniform draw `u`."""
    whole = math.floor(weight)
    return whole + (1 if u < weight - whole else 0)


@dataclass
class Record:
    """A sample in flight: where it came from, its JSON, its FLAC bytes, and which copy it is."""
    stream: str
    shard: str
    ordinal: int  # position among the shard's readable samples
    copy: int
    key: str
    meta: dict
    flac: bytes

    @property
    def duration(self) -> float:
        return float(self.meta["duration"])

    def location(self) -> list:
        return [self.stream, self.shard, self.ordinal, self.copy, self.key]


@dataclass
class DecodedSample:
    key: str
    meta: dict
    audio: np.ndarray
    stream: str
    augmented: bool = False


def shard_order(urls: list[str], seed: int, stream: str, epoch: int, shuffle: bool) -> list[str]:
    order = list(urls)
    if shuffle:
        random.Random(stable_seed(seed, "shards", stream, epoch)).shuffle(order)
    return order


class StreamCursor:
    """One stream's share for one part: shard plan, read position, shuffle buffer."""

    def __init__(self, spec: StreamConfig, config: LoaderConfig, part: int, parts: int,
                 epoch: int):
        self.spec, self.config = spec, config
        self.part, self.parts = part, parts
        self.urls = expand_urls(spec.shards)
        if not self.urls:
            raise FunfactoryError(f"stream {spec.name!r}: no shards match {spec.shards}")
        self.tasks = set(spec.tasks)
        self.reader = ShardReader([], decode=False)
        self.rng = random.Random(stable_seed(config.seed, "buffer", spec.name, part))
        self.buffer: list[Record] = []
        self.start_epoch(epoch)

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        order = shard_order(self.urls, self.config.seed, self.spec.name, epoch,
                            self.config.shuffle_shards)
        self.by_index = len(order) < self.parts
        self.plan = order if self.by_index else order[self.part::self.parts]
        self.shard_pos, self.ordinal, self.running_index = 0, 0, 0
        self.source_done = not self.plan
        self.popped = 0
        self._samples: Iterator | None = None

    # -- reading ---------------------------------------------------------------------------
    def _open(self) -> None:
        self._samples = iter(self.reader.read_shard(self.plan[self.shard_pos]))
        for _ in range(self.ordinal):
            if next(self._samples, None) is None:
                break

    def _next_raw(self):
        while not self.source_done:
            if self._samples is None:
                self._open()
            sample = next(self._samples, None)
            if sample is None:
                self.shard_pos += 1
                self.ordinal, self._samples = 0, None
                self.source_done = self.shard_pos >= len(self.plan)
                continue
            self.ordinal += 1
            self.running_index += 1
            if self.by_index and (self.running_index - 1) % self.parts != self.part:
                continue
            return sample, self.ordinal - 1
        return None

    def _copies(self, sample, ordinal: int) -> list[Record]:
        meta = sample.meta
        duration = float(meta["duration"])
        if self.tasks and meta["task"] not in self.tasks:
            return []
        if not self.config.min_duration <= duration <= self.config.max_duration:
            return []
        weight = (self.config.language_weights.get(meta["language"], 1.0)
                  * self.config.task_weights.get(meta["task"], 1.0))
        n = 1 if weight == 1.0 else repeat_count(
            weight, stable_uniform(self.config.seed, "resample", self.epoch, sample.key))
        return [Record(self.spec.name, sample.shard, ordinal, c, sample.key, meta, sample.flac)
                for c in range(n)]

    def pop(self) -> Record | None:
        """The next record of this stream after the shuffle buffer; None when the epoch is done."""
        size = max(1, self.config.shuffle_buffer)
        while len(self.buffer) < size and not self.source_done:
            raw = self._next_raw()
            if raw is not None:
                self.buffer.extend(self._copies(*raw))
        if not self.buffer:
            return None
        self.popped += 1
        if size == 1:
            return self.buffer.pop(0)
        i = self.rng.randrange(len(self.buffer))
        self.buffer[i], self.buffer[-1] = self.buffer[-1], self.buffer[i]
        return self.buffer.pop()

    # -- state -------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"epoch": self.epoch, "shard_pos": self.shard_pos, "ordinal": self.ordinal,
                "running_index": self.running_index, "source_done": self.source_done,
                "popped": self.popped,
                "rng": _rng_state(self.rng), "buffer": [r.location() for r in self.buffer]}

    def restore(self, state: dict, fetched: dict[tuple, Record]) -> None:
        self.start_epoch(int(state["epoch"]))
        self.shard_pos, self.ordinal = int(state["shard_pos"]), int(state["ordinal"])
        self.running_index = int(state["running_index"])
        self.source_done = bool(state["source_done"])
        self.popped = int(state["popped"])
        self.rng.setstate(_rng_from_state(state["rng"]))
        self.buffer = [fetched[tuple(loc)] for loc in state["buffer"]]


def _rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _rng_from_state(state: list) -> tuple:
    return (state[0], tuple(state[1]), state[2])


def fetch_records(locations: list[list], reader: ShardReader | None = None) -> dict[tuple, Record]:
    """Re-read buffered samples by location (stream, shard, ordinal, copy, key), one pass per
    shard; the key found at the ordinal must be the one recorded."""
    reader = reader or ShardReader([], decode=False)
    wanted: dict[str, dict[int, list[tuple]]] = {}
    for loc in locations:
        stream, shard, ordinal, copy, key = loc
        wanted.setdefault(shard, {}).setdefault(int(ordinal), []).append(
            (stream, shard, int(ordinal), int(copy), key))
    found: dict[tuple, Record] = {}
    for shard, ordinals in wanted.items():
        last = max(ordinals)
        for ordinal, sample in enumerate(reader.read_shard(shard)):
            for loc in ordinals.get(ordinal, ()):
                if sample.key == loc[4]:
                    found[loc] = Record(loc[0], shard, ordinal, loc[3], sample.key, sample.meta,
                                        sample.flac)
            if ordinal >= last:
                break
    missing = [loc for locs in wanted.values() for group in locs.values() for loc in group
               if loc not in found]
    if missing:
        raise FunfactoryError(
            f"cannot resume the loader: {len(missing)} buffered sample(s) are not where the "
            f"checkpoint saw them (first: {missing[0]}); the shards changed since - restart the "
            "epoch")
    return found


class Bucketer:
    """Duration buckets that emit a batch when the next sample would exceed the audio cap."""

    def __init__(self, config: LoaderConfig):
        self.config = config
        self.bounds = sorted(config.bucket_boundaries)
        self.buckets: list[list[Record]] = [[] for _ in range(len(self.bounds) + 1)]

    def _index(self, duration: float) -> int:
        for i, bound in enumerate(self.bounds):
            if duration <= bound:
                return i
        return len(self.bounds)

    def add(self, record: Record) -> list[Record] | None:
        c = self.config
        if c.batch_size > 0:
            bucket = self.buckets[0]
            bucket.append(record)
            if len(bucket) >= c.batch_size:
                self.buckets[0] = []
                return bucket
            return None
        i = self._index(record.duration)
        bucket = self.buckets[i]
        longest = max([record.duration] + [r.duration for r in bucket])
        if bucket and ((len(bucket) + 1) * longest > c.max_batch_seconds
                       or len(bucket) + 1 > c.max_batch_size):
            self.buckets[i] = [record]
            return bucket
        bucket.append(record)
        return None

    def flush(self) -> Iterator[list[Record]]:
        for i, bucket in enumerate(self.buckets):
            if bucket:
                self.buckets[i] = []
                yield bucket

    def state(self) -> list[list[list]]:
        return [[r.location() for r in bucket] for bucket in self.buckets]

    def restore(self, state: list[list[list]], fetched: dict[tuple, Record]) -> None:
        self.buckets = [[fetched[tuple(loc)] for loc in bucket] for bucket in state]


class PartPipeline:
    """Everything one part (rank x worker) does for one epoch: read, mix, bucket, decode."""

    def __init__(self, config: LoaderConfig, epoch: int, part: int, parts: int,
                 augmenter: Augmenter | None = None, state: dict | None = None):
        if not config.streams:
            raise FunfactoryError("the loader has no streams: set data.streams to at least one "
                                  "{name, shards} entry")
        if all(s.cycle for s in config.streams):
            raise FunfactoryError("every data stream has cycle: true, so an epoch never ends; "
                                  "leave at least one stream (the main corpus) non-cycling")
        self.config, self.epoch, self.part, self.parts = config, epoch, part, parts
        self.augmenter = augmenter
        self.cursors = [StreamCursor(s, config, part, parts, epoch) for s in config.streams]
        self.active = [True] * len(self.cursors)
        self.mixer = random.Random(stable_seed(config.seed, "mix", epoch, part))
        self.bucketer = Bucketer(config)
        self.batches = 0
        self.finished = False
        if state is not None:
            self._restore(state)

    def _restore(self, state: dict) -> None:
        locations = [loc for s in state["streams"] for loc in s["buffer"]]
        locations += [loc for bucket in state["buckets"] for loc in bucket]
        fetched = fetch_records(locations)
        for cursor, s in zip(self.cursors, state["streams"]):
            cursor.restore(s, fetched)
        self.active = list(state["active"])
        self.mixer.setstate(_rng_from_state(state["mixer"]))
        self.bucketer.restore(state["buckets"], fetched)
        self.batches = int(state["batches"])
        self.finished = bool(state["finished"])

    def state(self) -> dict:
        return {"epoch": self.epoch, "part": self.part, "parts": self.parts,
                "streams": [c.state() for c in self.cursors], "active": list(self.active),
                "mixer": _rng_state(self.mixer), "buckets": self.bucketer.state(),
                "batches": self.batches, "finished": self.finished}

    def _draw(self) -> Record | None:
        while True:
            live = [i for i, a in enumerate(self.active) if a]
            if not any(not self.cursors[i].spec.cycle for i in live):
                return None
            weights = [self.cursors[i].spec.weight for i in live]
            i = self.mixer.choices(live, weights=weights)[0] if len(live) > 1 else live[0]
            cursor = self.cursors[i]
            record = cursor.pop()
            if record is not None:
                return record
            if cursor.spec.cycle and cursor.popped:
                cursor.start_epoch(cursor.epoch + 1)
            else:  # a finished non-cycling stream, or a cycling one with nothing for this part
                self.active[i] = False

    def record_batches(self) -> Iterator[list[Record]]:
        """Batches of records; `state()` between two yields describes the exact next batch."""
        while not self.finished:
            record = self._draw()
            if record is None:
                self.finished = True
                break
            batch = self.bucketer.add(record)
            if batch is not None:
                self.batches += 1
                yield batch
        for batch in self.bucketer.flush():
            self.batches += 1
            yield batch

    def decode(self, batch: list[Record]) -> list[DecodedSample]:
        out = []
        for r in batch:
            audio, _ = decode_flac(r.flac)
            sample = DecodedSample(r.key, r.meta, audio, r.stream)
            if self.augmenter is not None and stable_uniform(
                    self.config.seed, "augment", self.epoch, r.key, r.copy) < self.config.augment.fraction:
                rng = np.random.default_rng(stable_seed(self.config.seed, "noise", self.epoch,
                                                        r.key, r.copy))
                sample.audio, sample.meta = self.augmenter(audio, dict(r.meta), rng)
                sample.augmented = True
            out.append(sample)
        return out


def _identity(batch):
    return batch


class _PartsDataset(torch.utils.data.IterableDataset):
    """The DataLoader's view: each worker runs the PartPipeline of its logical part."""

    def __init__(self, loader: "StreamingLoader", rotation: int):
        super().__init__()
        self.config, self.epoch = loader.config, loader.epoch
        self.rank, self.world_size = loader.rank, loader.world_size
        self.num_workers = max(1, loader.config.num_workers)
        self.collate, self.augmenter = loader.collate, loader.augmenter
        self.states = dict(loader.worker_states)
        self.rotation = rotation

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        physical = info.id if info is not None else 0
        logical = (physical + self.rotation) % self.num_workers
        pipeline = PartPipeline(self.config, self.epoch, self.rank * self.num_workers + logical,
                                self.world_size * self.num_workers, self.augmenter,
                                self.states.get(logical))
        for records in pipeline.record_batches():
            batch = self.collate(pipeline.decode(records))
            batch["loader_state"] = {"worker": logical, **pipeline.state()}
            yield batch


class StreamingLoader:
    """Epochs of batches for one rank; `state_dict()` after any batch resumes on the next one.

    `for batch in loader` runs the rest of the current epoch (and then moves to the next epoch);
    `loader.batches()` runs epochs forever. Batches are dicts from `collate` (a
    `funfactory.training.collate.Collator` by default) with "keys", "waveforms", "lengths",
    "texts", "prompts", ... and "seconds" of audio.
    """

    def __init__(self, config: LoaderConfig, rank: int = 0, world_size: int = 1,
                 collate: Callable | None = None, augmenter: Augmenter | None = None):
        from funfactory.training.collate import Collator

        if not 0 <= rank < world_size:
            raise FunfactoryError(f"rank {rank} is outside a world of {world_size}")
        self.config, self.rank, self.world_size = config, rank, world_size
        self.collate = collate or Collator()
        self.augmenter = augmenter
        self.epoch = 0
        self.consumed = 0
        self.next_worker = 0
        self.worker_states: dict[int, dict] = {}

    def __iter__(self) -> Iterator[dict]:
        workers = self.config.num_workers
        dataset = _PartsDataset(self, rotation=self.next_worker)
        if workers > 0:
            source = torch.utils.data.DataLoader(
                dataset, batch_size=None, num_workers=workers, collate_fn=_identity,
                prefetch_factor=self.config.prefetch_factor)
        else:
            source = dataset
        for batch in source:
            state = batch.pop("loader_state")
            self.worker_states[state["worker"]] = state
            self.consumed += 1
            self.next_worker = (state["worker"] + 1) % max(1, workers)
            yield batch
        self.epoch += 1
        self.consumed, self.next_worker, self.worker_states = 0, 0, {}

    def batches(self) -> Iterator[dict]:
        while True:
            # A checkpoint taken after an epoch's last batch resumes into an epoch with nothing
            # left: only a fresh epoch without a batch means the data is missing.
            resumed = bool(self.worker_states)
            produced = False
            for batch in self:
                produced = True
                yield batch
            if not produced and not resumed:
                raise FunfactoryError(
                    f"rank {self.rank}: an epoch of the loader yielded no batch; check the "
                    "streams' shards, task filters and duration limits")

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "consumed": self.consumed, "next_worker": self.next_worker,
                "rank": self.rank, "world_size": self.world_size,
                "num_workers": self.config.num_workers,
                "workers": {str(k): v for k, v in self.worker_states.items()}}

    def load_state_dict(self, state: dict) -> None:
        for name in ("rank", "world_size", "num_workers"):
            mine = getattr(self, name) if name != "num_workers" else self.config.num_workers
            if int(state[name]) != mine:
                raise FunfactoryError(
                    f"loader state was saved with {name}={state[name]}, this run has {mine}: "
                    "resume with the same ranks and workers (or start the epoch afresh)")
        self.epoch, self.consumed = int(state["epoch"]), int(state["consumed"])
        self.next_worker = int(state["next_worker"])
        self.worker_states = {int(k): v for k, v in state["workers"].items()}
