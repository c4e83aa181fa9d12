"""Leakage checks between a test set and training data, by text and by audio (section 6.1).

Fun-ASR report section 6.1 builds test sets from media that no training data can have seen. A
test item leaks when a training item holds the same words or the same recording:

- ``text_exact``: equal scoring-form text (:func:`funfactory.eval.textnorm.normalize_for_scoring`:
  case, punctuation, width, script and number spelling do not hide a copy);
- ``text_near``: Jaccard similarity of character 3-gram sets at least ``text_threshold``
  (default 0.7: a changed word or two in a sentence), found by MinHash-LSH
  (:mod:`funfactory.eval.minhash`) and verified on the exact n-gram sets;
- ``audio_exact``: byte-identical encoded audio (sha256);
- ``audio``: landmark fingerprints agreeing at one time offset (:mod:`funfactory.eval.fingerprint`):
  survives MP3 re-encoding, gain, resampling and trimming.

Texts shorter than ``min_text_chars`` characters (scoring form, spaces removed) are not judged
by text: "thank you" in a test set and in training is a common phrase, not a leak. They are still
judged by audio and are counted as ``text_too_short``.

The test side (small: thousands of items) is indexed; training items (large: millions) stream
past it in batches, so memory holds the test set only and training shards are read once.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from funfactory.eval import minhash
from funfactory.eval.fingerprint import (
    MIN_VOTE_SHARE,
    MIN_VOTES,
    Fingerprint,
    FingerprintIndex,
    fingerprint,
)
from funfactory.eval.textnorm import normalize_for_scoring

TEXT_THRESHOLD = 0.7
MIN_TEXT_CHARS = 10
SCAN_BATCH = 4096
ESTIMATE_MARGIN = 0.15
KINDS = ("text_exact", "text_near", "audio_exact", "audio")


@dataclass
class Item:
    """One clip on either side of a check; any of text and audio may be missing. A clip
    fingerprinted elsewhere (a worker process) carries ``audio_print`` instead of ``audio``."""

    key: str
    text: str | None = None
    audio: np.ndarray | None = field(default=None, repr=False)
    sample_rate: int = 16000
    audio_sha256: str | None = None
    audio_print: Fingerprint | None = field(default=None, repr=False)

    def fingerprint(self) -> Fingerprint | None:
        if self.audio_print is None and self.audio is not None:
            self.audio_print = fingerprint(self.audio, self.sample_rate)
        return self.audio_print


@dataclass(frozen=True)
class Overlap:
    test_key: str
    train_key: str
    kind: str  # one of KINDS
    score: float  # 1.0 exact; Jaccard for text_near; aligned vote share for audio
    detail: dict = field(default_factory=dict)


def scoring_text(text: str | None) -> str:
    return normalize_for_scoring(text) if text else ""


def _judgeable(form: str, min_chars: int) -> bool:
    return len(form.replace(" ", "")) >= min_chars


class LeakageIndex:
    """The test side of a check, indexed by text and audio fingerprints."""

    def __init__(self, text_threshold: float = TEXT_THRESHOLD, min_text_chars: int = MIN_TEXT_CHARS,
                 audio: bool = True, min_votes: int = MIN_VOTES,
                 min_vote_share: float = MIN_VOTE_SHARE):
        self.text_threshold = text_threshold
        self.min_text_chars = min_text_chars
        self.audio = audio
        self.min_votes, self.min_vote_share = min_votes, min_vote_share
        self.keys: list[str] = []
        self.counts: Counter[str] = Counter()
        self._forms: list[str] = []
        self._exact: dict[str, list[int]] = defaultdict(list)
        self._sha: dict[str, list[int]] = defaultdict(list)
        self._prints = FingerprintIndex()
        self._hasher = minhash.MinHasher()
        self._shingles: list[np.ndarray] = []
        self._lsh: minhash.LSHIndex | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, item: Item) -> None:
        number = len(self.keys)
        self.keys.append(item.key)
        form = scoring_text(item.text)
        self._forms.append(form)
        if _judgeable(form, self.min_text_chars):
            self._exact[form].append(number)
        elif form:
            self.counts["text_too_short"] += 1
        if item.audio_sha256:
            self._sha[item.audio_sha256].append(number)
        if self.audio and item.fingerprint() is not None:
            self._prints.add(item.key, item.fingerprint())
        self._lsh = None

    def _build_text(self) -> None:
        judged = [f if _judgeable(f, self.min_text_chars) else "" for f in self._forms]
        self._shingles = minhash.shingle_hashes(judged)
        self._signatures = self._hasher.signatures(self._shingles)
        self._lsh = minhash.LSHIndex(minhash.band_keys(self._signatures))
        self._empty = np.asarray([len(s) == 0 for s in self._shingles])

    def scan(self, training: Iterable[Item], batch_size: int = SCAN_BATCH) -> Iterator[Overlap]:
        """Every overlap between the indexed test items and ``training`` items."""
        if self._lsh is None:
            self._build_text()
        iterator = iter(training)
        while batch := list(itertools.islice(iterator, batch_size)):
            self.counts["training_items"] += len(batch)
            yield from self._scan_text(batch)
            yield from self._scan_audio(batch)

    def _scan_text(self, batch: list[Item]) -> Iterator[Overlap]:
        forms = [scoring_text(item.text) for item in batch]
        judged = [f if _judgeable(f, self.min_text_chars) else "" for f in forms]
        exact_pairs = set()
        for row, form in enumerate(judged):
            for test in self._exact.get(form, ()) if form else ():
                exact_pairs.add((row, test))
                yield Overlap(self.keys[test], batch[row].key, "text_exact", 1.0,
                              {"test_text": self._forms[test], "train_text": form})
        shingles = minhash.shingle_hashes(judged)
        signatures = self._hasher.signatures(shingles)
        empty = np.asarray([len(s) == 0 for s in shingles])
        rows, tests = self._lsh.candidates(minhash.band_keys(signatures), skip_empty=empty)
        # Signature agreement estimates Jaccard (sd <= 0.045 at 128 permutations); only pairs
        # within three deviations of the threshold are verified on their exact n-gram sets.
        estimate = (signatures[rows] == self._signatures[tests]).mean(axis=1)
        plausible = estimate >= self.text_threshold - ESTIMATE_MARGIN
        for row, test in zip(rows[plausible].tolist(), tests[plausible].tolist()):
            if (row, test) in exact_pairs or self._empty[test]:
                continue
            similarity = minhash.jaccard(shingles[row], self._shingles[test])
            if similarity >= self.text_threshold:
                yield Overlap(self.keys[test], batch[row].key, "text_near", round(similarity, 4),
                              {"test_text": self._forms[test], "train_text": forms[row]})

    def _scan_audio(self, batch: list[Item]) -> Iterator[Overlap]:
        for item in batch:
            exact = set()
            for test in self._sha.get(item.audio_sha256, ()) if item.audio_sha256 else ():
                exact.add(self.keys[test])
                yield Overlap(self.keys[test], item.key, "audio_exact", 1.0,
                              {"audio_sha256": item.audio_sha256})
            if not self.audio or len(self._prints) == 0 or item.fingerprint() is None:
                continue
            matches = self._prints.query(item.key, item.fingerprint(), self.min_votes,
                                         self.min_vote_share)
            for match in matches:
                if match.item not in exact:
                    # The index holds the test side: offset_s = test time - training time,
                    # i.e. where the training clip starts inside the test clip.
                    yield Overlap(match.item, item.key, "audio", round(match.share, 4),
                                  {"votes": match.votes, "offset_s": round(match.offset_s, 3)})


def group_by_test_item(overlaps: Iterable[Overlap]) -> dict[str, list[Overlap]]:
    """Overlaps per test item, strongest first (exact before near, then by score)."""
    grouped: dict[str, list[Overlap]] = defaultdict(list)
    for overlap in overlaps:
        grouped[overlap.test_key].append(overlap)
    rank = {kind: i for i, kind in enumerate(("text_exact", "audio_exact", "audio", "text_near"))}
    for overlaps_of_item in grouped.values():
        overlaps_of_item.sort(key=lambda o: (rank[o.kind], -o.score, o.train_key))
    return dict(grouped)


def write_leakage_report(grouped: dict[str, list[Overlap]], out_dir: str | Path,
                         summary: dict | None = None, max_matches: int = 20) -> tuple[Path, Path]:
    """``leakage.jsonl`` (one line per leaking test item with its training matches, at most
    ``max_matches`` each) and ``leakage.md`` (counts and a table of the strongest match)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl, markdown = out_dir / "leakage.jsonl", out_dir / "leakage.md"
    by_kind: Counter[str] = Counter()
    with jsonl.open("w", encoding="utf-8") as f:
        for test_key in sorted(grouped):
            overlaps = grouped[test_key]
            by_kind[overlaps[0].kind] += 1
            record = {"test_key": test_key, "matches": len(overlaps),
                      "overlaps": [asdict(o) for o in overlaps[:max_matches]]}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    lines = ["# Leakage report", ""]
    for name, value in (summary or {}).items():
        lines.append(f"- {name}: {value}")
    lines += [f"- leaking test items: {len(grouped)}",
              *(f"  - strongest evidence {kind}: {by_kind[kind]}" for kind in KINDS if by_kind[kind]),
              "", "| test item | training item | kind | score | matches |", "|---|---|---|---|---|"]
    for test_key in sorted(grouped):
        best = grouped[test_key][0]
        lines.append(f"| {test_key} | {best.train_key} | {best.kind} | {best.score:.3f} | "
                     f"{len(grouped[test_key])} |")
    markdown.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return jsonl, markdown
