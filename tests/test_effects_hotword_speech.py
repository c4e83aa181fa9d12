"""The hotword pool of the effects (section 5.5): the hotword job's miner finds the hotwords each
sentence was written around, train and test hotwords are disjoint, and retrieval from CTC
misspellings of them returns the true hotword."""

from __future__ import annotations

import pytest

from funfactory.effects.hotword_speech import plan_hotword_speech, read_pool
from funfactory.errors import FunfactoryError
from funfactory.synth.contextual import keyword_in, match_form
from funfactory.synth.hotwords import HotwordMiner


def test_the_miner_finds_the_hotwords_each_sentence_was_written_around():
    pool = read_pool()
    miner = HotwordMiner()
    mined = {}
    for split, sentences in pool.items():
        found = [[h.text for h in miner.mine(s.text)] for s in sentences]
        complete = sum(all(h in f for h in s.hotwords) for s, f in zip(sentences, found))
        print(f"{split}: {len(sentences)} sentences, intended hotwords all mined in {complete}, "
              f"{sum(map(len, found))} mined")
        assert complete >= 0.95 * len(sentences)
        mined[split] = {match_form(h) for f in found for h in f}
    assert len(pool["train"]) >= 100 and len(pool["test"]) >= 40
    assert not mined["train"] & mined["test"]


def test_no_test_hotword_is_spoken_in_the_demo_training_sentences():
    from funfactory.demo_speech import plan_speech

    test_hotwords = [h for s in read_pool()["test"] for h in s.hotwords]
    demo = plan_speech(0, []).train
    assert not [(h, t) for h in test_hotwords for t in demo if keyword_in(h, t)]


def test_planted_ctc_misspellings_retrieve_the_true_hotword():
    from funfactory.model.hotword import HotwordIndex, letters

    vocabulary = sorted({h for s in read_pool()["test"] for h in s.hotwords})
    index = HotwordIndex(vocabulary, letters)  # the `cpu` size's CTC head writes characters
    # CTC hypotheses of a 300-step CTC head on the pool's test speech, as it wrote them
    for hypothesis, hotword in [
            ("the traill above chamonixs was closed becase of faoling roks", "Chamonix"),
            ("our morgage was aproved by nord vica in les tha a wek", "Nordvika"),
            ("he wrot his dicertation on thermow dinamixs and heat engins", "thermodynamics"),
            ("the students learned houw as stethiscope works in their first clas", "stethoscope"),
            ("the painter spent her last yers in a coutag near corn wal", "Cornwall")]:
        assert index.retrieve(hypothesis)[0].hotword == hotword, hypothesis
    assert index.retrieve("the children played football in the park until it got dark") == []


def test_a_malformed_pool_line_names_the_file_line_and_format(tmp_path):
    path = tmp_path / "pool.txt"
    path.write_text("[train]\nA sentence without its hotwords.\n", encoding="utf-8")
    with pytest.raises(FunfactoryError, match=r"pool.txt:2: expected `sentence \| hotword"):
        read_pool(path)
    path.write_text("[train]\nWe met Anna Berg. | Anna Berg\n", encoding="utf-8")
    with pytest.raises(FunfactoryError, match=r"no sentences under \['test'\]"):
        read_pool(path)


def test_the_speech_plan_speaks_the_sections_without_an_unseen_voice():
    plan = plan_hotword_speech(0, sentences=2)
    pool = read_pool()
    assert plan.train == tuple(s.text for s in pool["train"][:2])
    assert plan.heldout == tuple(s.text for s in pool["test"][:2])
    assert not plan.unseen_voice and plan.key() != plan_hotword_speech(0, sentences=3).key()
