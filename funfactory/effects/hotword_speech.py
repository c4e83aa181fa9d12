"""Speech written around hotwords, for the hotword and GRPO effects (Fun-ASR section 5.5, Table 6).

The report's hotword test sets are sentences that carry names of people, places, companies and
products and rare technical terms. The demo's sentence pool holds almost none, so these
experiments read their own pool, `hotword-sentences-en.txt`: each line a sentence and the hotwords
it was written around, in a `[train]` and a `[test]` section whose hotwords are disjoint (the test
measures the hotword list, not memorised names). It is spoken by the demo's training voices
through `funfactory.demo_speech` (each training sentence by hibari and one other voice, each test
sentence by every voice; no unseen-voice set) and cached under `$FUNFACTORY_CACHE/hotword-speech/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from funfactory.errors import FunfactoryError

POOL = Path(__file__).with_name("hotword-sentences-en.txt")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class HotwordSentence:
    text: str
    hotwords: tuple[str, ...]  # what the sentence was written around


def read_pool(path: Path = POOL) -> dict[str, list[HotwordSentence]]:
    """The `[train]` and `[test]` sentences of a pool file (`sentence | hotword; hotword`)."""
    pool: dict[str, list[HotwordSentence]] = {}
    section = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            if section not in SPLITS:
                raise FunfactoryError(f"{path}:{number}: unknown section {line}; use "
                                      f"{' or '.join(f'[{s}]' for s in SPLITS)}")
            pool.setdefault(section, [])
            continue
        text, bar, hotwords = line.partition(" | ")
        words = tuple(h.strip() for h in hotwords.split(";") if h.strip())
        if section is None or not bar or not words:
            raise FunfactoryError(f"{path}:{number}: expected `sentence | hotword; hotword` "
                                  f"under a [train] or [test] section, got {line!r}")
        pool[section].append(HotwordSentence(text.strip(), words))
    missing = [s for s in SPLITS if not pool.get(s)]
    if missing:
        raise FunfactoryError(f"{path} has no sentences under {missing}: add them")
    return pool


def plan_hotword_speech(seed: int, sentences: int = 0, path: Path = POOL):
    """The speech plan of the pool: its first `sentences` of each section (0: all of them)."""
    from funfactory.demo_speech import SpeechPlan

    pool = read_pool(path)
    take = lambda split: tuple(s.text for s in pool[split][:sentences or None])  # noqa: E731
    return SpeechPlan(take("train"), take("test"), seed, unseen_voice=False)


def hotword_speech(seed: int, sentences: int = 0) -> Path:
    """Shard sets `train/` and `heldout/` of the pool's speech, built once into the cache."""
    from funfactory.demo_speech import build_speech

    return build_speech(plan_hotword_speech(seed, sentences), pool="hotword-speech")
