"""Session fixtures over the embedded default corpus, for any test that wants real raw audio.

    from tests.conftest_synth import tiny_corpus  # noqa: F401  (pytest finds the fixture by name)

    def test_ingest(tiny_corpus):
        for row in tiny_corpus.recordings(): ...

The corpus is built once into $FUNFACTORY_CACHE (default ~/.cache/funfactory) and reused by later
sessions; concurrent first builds wait on a lock.
"""

from __future__ import annotations

import pytest

from funfactory.synth.corpus import CorpusInfo, default_corpus


@pytest.fixture(scope="session")
def tiny_corpus() -> CorpusInfo:
    """The tiny default corpus (seed 0): about 70 s of en / zh / zh-en speech, noise and an RIR."""
    return default_corpus("tiny")
