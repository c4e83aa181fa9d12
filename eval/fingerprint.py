"""Audio fingerprints for leakage checks: spectral-peak landmark hashes with offset voting.

Fun-ASR report section 6.1 builds test sets that no training data has seen. The same recording
reaches a corpus in many guises: re-encoded (MP3), louder or quieter, resampled, cut a little
differently, or mixed with noise by augmentation. Landmark hashing (after Wang, "An Industrial-Strength Audio Search Algorithm",
2003) survives all of these:

1. audio -> 8 kHz mono (speech content lives below 4 kHz; codecs damage the top first);
2. log-magnitude STFT (64 ms window, 16 ms hop); gain only shifts it by a constant;
3. peaks: points that are the maximum of their time-frequency neighbourhood and within
   ``DYNAMIC_RANGE_DB`` of the clip's loudest point (relative, so gain-invariant);
4. each peak (anchor) pairs with the next few peaks in a target zone ahead of it; a pair
   (f1, f2 - f1, dt) packs into a 32-bit hash stored with the anchor's frame time.

Two clips share content when many of their hashes agree *at one consistent time offset*
(trimming 0.5 s shifts every hash by the same offset). :class:`FingerprintIndex` stores
(hash, item, time) sorted by hash; a query looks its hashes up by binary search and votes per
(item, offset), so matching N queries against M items costs about N x (hashes per clip) x
(postings per hash), not N x M comparisons. Hashes so common that their posting list exceeds
``max_postings`` (silence, tones) are stop-hashes and are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FINGERPRINT_RATE = 8000
WINDOW = 512
HOP = 128
FRAMES_PER_SECOND = FINGERPRINT_RATE / HOP
DYNAMIC_RANGE_DB = 45.0
PEAK_NEIGHBOURHOOD = (15, 9)  # (frequency bins, frames)
MAX_PEAKS_PER_SECOND = 40
FAN_OUT = 6
TARGET_DT = (1, 48)  # frames ahead of the anchor
TARGET_DF = 48  # bins either side of the anchor

# Decision thresholds, tuned on TTS speech with the planted distortions of tests/test_leakage.py:
# unrelated 4 s clips of one voice reach at most 7 aligned votes (share < 0.01); copies reach
# 280+ after MP3 + gain + 0.5 s trim, 190+ under white noise at 0 dB SNR (share > 0.2).
MIN_VOTES = 12
MIN_VOTE_SHARE = 0.04


@dataclass(frozen=True)
class Fingerprint:
    hashes: np.ndarray  # uint32
    times: np.ndarray  # int32 anchor frame
    duration: float

    def __len__(self) -> int:
        return len(self.hashes)


def _to_fingerprint_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    wave = np.asarray(audio, dtype=np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    if sample_rate != FINGERPRINT_RATE:
        import soxr
        wave = soxr.resample(wave, sample_rate, FINGERPRINT_RATE, quality="MQ")
    return np.ascontiguousarray(wave, dtype=np.float32)


def _log_spectrogram(wave: np.ndarray) -> np.ndarray:
    if len(wave) < WINDOW:
        wave = np.pad(wave, (0, WINDOW - len(wave)))
    frames = np.lib.stride_tricks.sliding_window_view(wave, WINDOW)[::HOP]
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(WINDOW).astype(np.float32), axis=1))
    return 20.0 * np.log10(spectrum.T + 1e-9)  # (bins, frames)


def _peaks(spec_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.ndimage import maximum_filter

    local_max = maximum_filter(spec_db, size=PEAK_NEIGHBOURHOOD, mode="constant", cval=-np.inf)
    floor = spec_db.max() - DYNAMIC_RANGE_DB
    is_peak = (spec_db == local_max) & (spec_db > floor)
    is_peak[:2] = False  # DC and the lowest bin carry hum, not content
    bins, frames = np.nonzero(is_peak)
    budget = int(MAX_PEAKS_PER_SECOND * spec_db.shape[1] / FRAMES_PER_SECOND) + 1
    if len(bins) > budget:
        keep = np.argsort(spec_db[bins, frames])[-budget:]
        bins, frames = bins[keep], frames[keep]
    order = np.lexsort((bins, frames))
    return frames[order], bins[order]


def fingerprint(audio: np.ndarray, sample_rate: int) -> Fingerprint:
    """Landmark hashes of one clip (module docstring, steps 1-4)."""
    wave = _to_fingerprint_rate(audio, sample_rate)
    duration = len(wave) / FINGERPRINT_RATE
    if not np.any(wave):
        return Fingerprint(np.empty(0, np.uint32), np.empty(0, np.int32), duration)
    frames, bins = _peaks(_log_spectrogram(wave))
    hashes, times = [], []
    count = len(frames)
    for i in range(count):
        paired = 0
        for j in range(i + 1, count):
            dt = frames[j] - frames[i]
            if dt < TARGET_DT[0]:
                continue
            if dt > TARGET_DT[1] or paired >= FAN_OUT:
                break
            df = int(bins[j]) - int(bins[i])
            if abs(df) > TARGET_DF:
                continue
            hashes.append((int(bins[i]) << 16) | ((df + 128) << 8) | int(dt))
            times.append(frames[i])
            paired += 1
    return Fingerprint(np.asarray(hashes, np.uint32), np.asarray(times, np.int32), duration)


@dataclass(frozen=True)
class AudioMatch:
    query: str
    item: str
    votes: int  # hashes agreeing at the best offset
    share: float  # votes / hashes of the shorter clip
    offset_s: float  # item time - query time


class FingerprintIndex:
    """Landmark hashes of many clips, searchable by hash (sub-quadratic matching)."""

    def __init__(self, max_postings: int = 2000):
        self.max_postings = max_postings
        self.items: list[str] = []
        self.hash_counts: list[int] = []
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._hashes = np.empty(0, np.uint32)
        self._items = np.empty(0, np.int32)
        self._times = np.empty(0, np.int32)
        self._dirty = False

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: str, print_: Fingerprint) -> None:
        number = len(self.items)
        self.items.append(item)
        self.hash_counts.append(len(print_))
        self._parts.append((print_.hashes, np.full(len(print_), number, np.int32), print_.times))
        self._dirty = True

    def _build(self) -> None:
        if not self._dirty:
            return
        hashes = np.concatenate([self._hashes, *(p[0] for p in self._parts)])
        items = np.concatenate([self._items, *(p[1] for p in self._parts)])
        times = np.concatenate([self._times, *(p[2] for p in self._parts)])
        order = np.argsort(hashes, kind="stable")
        self._hashes, self._items, self._times = hashes[order], items[order], times[order]
        self._parts, self._dirty = [], False

    def query(self, name: str, print_: Fingerprint, min_votes: int = MIN_VOTES,
              min_share: float = MIN_VOTE_SHARE, limit: int = 5) -> list[AudioMatch]:
        """Items sharing content with ``print_``, best first (at most ``limit``)."""
        self._build()
        if len(print_) == 0 or len(self._hashes) == 0:
            return []
        lo = np.searchsorted(self._hashes, print_.hashes, side="left")
        hi = np.searchsorted(self._hashes, print_.hashes, side="right")
        sizes = hi - lo
        usable = (sizes > 0) & (sizes <= self.max_postings)
        if not usable.any():
            return []
        lo, sizes, query_times = lo[usable], sizes[usable], print_.times[usable]
        # Expand every (query hash, posting) pair without a Python loop.
        starts = np.repeat(lo - np.cumsum(sizes) + sizes, sizes) + np.arange(sizes.sum())
        items = self._items[starts].astype(np.int64)
        offsets = self._times[starts].astype(np.int64) - np.repeat(query_times, sizes)
        pairs = items * (1 << 32) + (offsets + (1 << 31))
        unique, votes = np.unique(pairs, return_counts=True)
        strong = votes >= min_votes
        unique, votes = unique[strong], votes[strong]
        best: dict[int, tuple[int, int]] = {}
        for key, item, count in zip(unique, unique >> 32, votes):
            if count > best.get(int(item), (0, 0))[0]:
                best[int(item)] = (int(count), int(key & 0xFFFFFFFF) - (1 << 31))
        matches = []
        for item, (count, offset) in best.items():
            share = count / max(1, min(len(print_), self.hash_counts[item]))
            if share >= min_share:
                matches.append(AudioMatch(name, self.items[item], count, share,
                                          offset / FRAMES_PER_SECOND))
        matches.sort(key=lambda m: (-m.votes, m.item))
        return matches[:limit]


def brute_force_match(query: Fingerprint, item: Fingerprint) -> tuple[int, int]:
    """(votes, offset in frames) of one pair compared directly: the anchor for the index."""
    common = np.intersect1d(query.hashes, item.hashes)
    if len(common) == 0:
        return 0, 0
    q_sorted = np.argsort(query.hashes, kind="stable")
    i_sorted = np.argsort(item.hashes, kind="stable")
    q_hashes, i_hashes = query.hashes[q_sorted], item.hashes[i_sorted]
    offsets = []
    for h in common:
        qt = query.times[q_sorted[np.searchsorted(q_hashes, h):np.searchsorted(q_hashes, h, "right")]]
        it = item.times[i_sorted[np.searchsorted(i_hashes, h):np.searchsorted(i_hashes, h, "right")]]
        offsets.append((it[None, :] - qt[:, None]).ravel())
    values, counts = np.unique(np.concatenate(offsets), return_counts=True)
    best = int(np.argmax(counts))
    return int(counts[best]), int(values[best])
