"""MinHash signatures and LSH banding over character n-grams, vectorised with numpy.

Fun-ASR report section 6.1 removes test items whose text a training item already holds, also
when it is only nearly the same (a word changed, punctuation differs). MinHash estimates the
Jaccard similarity of two texts' n-gram sets; LSH banding finds candidate pairs without
comparing every test text to every training text (Broder 1997; Leskovec et al., *Mining of
Massive Datasets*, ch. 3).

Everything works on batches: all texts' code points are laid end to end, n-gram hashes are
rolled over the whole array at once, and each permutation's minimum per text is one
``np.minimum.reduceat``. 100k texts hash in seconds where a per-shingle Python loop takes
minutes.

With ``bands`` x ``rows`` = ``num_perm``, a pair of Jaccard similarity s becomes a candidate with
probability 1 - (1 - s^rows)^bands; the default 32 x 4 catches s = 0.7 pairs 99.99 % of the time
(s = 0.4: 56 %). Candidates are then verified on their exact n-gram sets by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

NGRAM = 3
NUM_PERM = 128
BANDS = 32
_MERSENNE_MIX = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = np.iinfo(np.uint64).max


def _codepoints(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    joined = "".join(texts)
    points = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    return points, lengths


def shingle_hashes(texts: Sequence[str], n: int = NGRAM) -> list[np.ndarray]:
    """Sorted unique 64-bit hashes of each text's character n-grams (a text shorter than
    ``n`` is one shingle; an empty text has none)."""
    points, lengths = _codepoints(texts)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(texts) else np.empty(0, np.int64)
    rolled = np.zeros(len(points), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            shifted = np.zeros(len(points), dtype=np.uint64)
            shifted[:len(points) - k] = points[k:]
            rolled = rolled * _MERSENNE_MIX + shifted + np.uint64(k + 1)
    out = []
    for start, length in zip(starts, lengths):
        if length == 0:
            out.append(np.empty(0, np.uint64))
        elif length < n:
            with np.errstate(over="ignore"):
                tail = points[start:start + length]
                value = np.uint64(length)
                for p in tail:
                    value = value * _MERSENNE_MIX + p
            out.append(np.asarray([value], np.uint64))
        else:
            out.append(np.unique(rolled[start:start + length - n + 1]))
    return out


@dataclass(frozen=True)
class MinHasher:
    num_perm: int = NUM_PERM
    seed: int = 1
    multipliers: np.ndarray = field(init=False, repr=False)
    increments: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        rng = np.random.default_rng(self.seed)
        multipliers = rng.integers(1, 2**63, size=self.num_perm, dtype=np.uint64) * 2 + 1
        object.__setattr__(self, "multipliers", multipliers.astype(np.uint64))
        object.__setattr__(self, "increments",
                           rng.integers(0, 2**63, size=self.num_perm, dtype=np.uint64))

    def signatures(self, shingles: Sequence[np.ndarray]) -> np.ndarray:
        """(texts, num_perm) uint64 signatures; a text without shingles gets all-max."""
        sizes = np.fromiter((len(s) for s in shingles), dtype=np.int64, count=len(shingles))
        signatures = np.full((len(shingles), self.num_perm), _EMPTY, dtype=np.uint64)
        present = sizes > 0
        if not present.any():
            return signatures
        flat = np.concatenate([s for s in shingles if len(s)])
        offsets = np.concatenate([[0], np.cumsum(sizes[present])[:-1]])
        with np.errstate(over="ignore"):
            for k in range(self.num_perm):
                permuted = flat * self.multipliers[k] + self.increments[k]
                signatures[present, k] = np.minimum.reduceat(permuted, offsets)
        return signatures


def band_keys(signatures: np.ndarray, bands: int = BANDS) -> np.ndarray:
    """(texts, bands) uint64 keys: one hash per band of rows."""
    texts, num_perm = signatures.shape
    if num_perm % bands:
        raise ValueError(f"num_perm {num_perm} is not a multiple of bands {bands}")
    rows = num_perm // bands
    keys = np.zeros((texts, bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for r in range(rows):
            keys = keys * _MERSENNE_MIX + signatures[:, r::rows][:, :bands]
    return keys


class LSHIndex:
    """Band keys of many texts, sorted per band; candidate lookup by binary search."""

    def __init__(self, keys: np.ndarray, max_bucket: int = 1000):
        self.bands = keys.shape[1]
        self.max_bucket = max_bucket
        self._order = np.argsort(keys, axis=0, kind="stable")
        self._sorted = np.take_along_axis(keys, self._order, axis=0)

    def candidates(self, query_keys: np.ndarray, skip_empty: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """(query rows, indexed rows) sharing at least one band; buckets larger than
        ``max_bucket`` (boilerplate) are skipped. Pairs are unique."""
        query_ids, item_ids = [], []
        for band in range(self.bands):
            column = self._sorted[:, band]
            lo = np.searchsorted(column, query_keys[:, band], side="left")
            hi = np.searchsorted(column, query_keys[:, band], side="right")
            sizes = hi - lo
            usable = (sizes > 0) & (sizes <= self.max_bucket)
            if skip_empty is not None:
                usable &= ~skip_empty
            if not usable.any():
                continue
            lo, sizes = lo[usable], sizes[usable]
            rows = np.nonzero(usable)[0]
            positions = np.repeat(lo - np.cumsum(sizes) + sizes, sizes) + np.arange(sizes.sum())
            query_ids.append(np.repeat(rows, sizes))
            item_ids.append(self._order[positions, band])
        if not query_ids:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        pairs = np.unique(np.stack([np.concatenate(query_ids), np.concatenate(item_ids)]), axis=1)
        return pairs[0], pairs[1]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique shingle arrays."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)
