"""Hotword retrieval (section 5.5): planted terms found in noisy CTC hypotheses, absent ones not."""

import random

import numpy as np
import pytest

from funfactory.errors import FunfactoryError
from funfactory.model.hotword import (
    HotwordIndex, approximate_substring_distance, levenshtein, pinyin_units, text_units,
    tokenizer_word_pieces)
from tests.conftest_model import _tiny_llm

COMMON_HAN = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理府研质"


@pytest.fixture(scope="module")
def word_pieces():
    return tokenizer_word_pieces(_tiny_llm()[1])


def random_chinese_terms(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(COMMON_HAN) for _ in range(rng.randint(2, 5))) for _ in range(count)]


def test_pinyin_units_split_initial_and_tonal_final():
    assert pinyin_units("通义") == ["t", "ong1", "y", "i4"]
    assert pinyin_units("阿里") == ["a1", "l", "i3"]


def test_mixed_text_becomes_pinyin_and_word_pieces(word_pieces):
    units = text_units("我们用Grafana Loki", word_pieces)
    assert units[:4] == ["w", "o3", "m", "en5"] and units[6:] == ["graf", "ana", "lo", "ki"]


def test_approximate_substring_distance_finds_the_best_window():
    text = np.array([5, 1, 2, 4, 3, 9])
    assert approximate_substring_distance([1, 2, 4, 3], text) == (0, 5)
    assert approximate_substring_distance([1, 2, 7, 3], text) == (1, 5)
    assert approximate_substring_distance([1, 2], text) == (0, 3)
    assert approximate_substring_distance([7, 8], text)[0] == 2


def test_planted_chinese_hotword_is_found_from_a_homophone_hypothesis(word_pieces):
    vocabulary = random_chinese_terms(2000) + ["通义实验室", "达摩院"]
    index = HotwordIndex(vocabulary, word_pieces)
    # CTC wrote 同一 for 通义 (wrong tones and characters, same sounds)
    found = [m.hotword for m in index.retrieve("我们下午去同一实验室参观", top_k=5)]
    assert found[0] == "通义实验室"
    absent = [m.hotword for m in index.retrieve("今天天气很好我们去公园散步", top_k=20)]
    assert "通义实验室" not in absent and "达摩院" not in absent


def test_planted_english_hotword_is_found_from_a_misspelled_hypothesis(word_pieces):
    vocabulary = ["Grafana Loki", "Kubernetes", "Prometheus", "Apache Beam", "TensorFlow Serving"]
    vocabulary += random_chinese_terms(500)
    index = HotwordIndex(vocabulary, word_pieces)
    found = [m.hotword for m in index.retrieve("we ship our logs to graphana loki every night")]
    assert found[:1] == ["Grafana Loki"]
    assert index.retrieve("we ship our logs to a bucket every night") == []
    assert [m.hotword for m in index.retrieve("我们用graphana loki看日志")][:1] == ["Grafana Loki"]


def test_index_agrees_with_a_brute_force_scan_and_shortlists(word_pieces):
    vocabulary = random_chinese_terms(3000, seed=1)
    index = HotwordIndex(vocabulary + ["阿里巴巴"], word_pieces)
    rng = random.Random(2)
    for _ in range(5):
        hypothesis = "".join(rng.choice(COMMON_HAN) for _ in range(30)) + "阿里八八"
        fast = index.retrieve(hypothesis, top_k=1000)
        slow = index.retrieve_brute_force(hypothesis, top_k=1000)
        assert {m.hotword for m in fast} <= {m.hotword for m in slow}
        assert "阿里巴巴" in {m.hotword for m in fast}
        # the index only verifies a small part of the vocabulary
        assert len(index.shortlist(index.hypothesis_ids(hypothesis))) < len(index) / 5


def test_hotword_without_letters_is_refused(word_pieces):
    with pytest.raises(FunfactoryError, match="no letters"):
        HotwordIndex(["!!!"], word_pieces)


def test_levenshtein():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
