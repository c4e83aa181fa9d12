"""Hotword retrieval (section 5.5): planted terms found in noisy CTC hypotheses, absent ones not."""

import math
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


def letters(word: str) -> list[str]:
    """One unit per letter, so a test controls every unit edit."""
    return list(word)


def scan(hotwords: list[str], hypothesis: str, max_error_rate: float) -> set[tuple[str, int]]:
    """The brute-force reference: every hotword against every substring of the hypothesis, by a
    plain-Python Sellers dynamic programme (free start and end), kept when within budget."""
    text = text_units(hypothesis, letters)
    found = set()
    for hotword in hotwords:
        pattern = text_units(hotword, letters)
        row = [0] * (len(text) + 1)
        for i, unit in enumerate(pattern, start=1):
            new = [i]
            for j, other in enumerate(text, start=1):
                new.append(min(row[j] + 1, new[j - 1] + 1, row[j - 1] + (unit != other)))
            row = new
        if text and min(row) <= math.floor(max_error_rate * len(pattern) + 1e-9):
            found.add((hotword, min(row)))
    return found


def edited(word: str, edits: int, rng: random.Random, alphabet: str) -> str:
    """`word` with `edits` substitutions, insertions or deletions at random, spread-out places."""
    units = list(word)
    for _ in range(edits):
        kind = rng.choice("sid") if len(units) > 1 else "s"
        at = rng.randrange(len(units))
        if kind == "s":
            units[at] = rng.choice([c for c in alphabet if c != units[at]])
        elif kind == "i":
            units.insert(at, rng.choice(alphabet))
        else:
            del units[at]
    return "".join(units)


def test_index_equals_a_brute_force_scan_on_random_cases():
    """Short hotwords, middle-unit substitutions and edits spread over long hotwords: whatever a
    scan of every hotword finds within budget, the index finds too, with the same distance."""
    alphabet = "abcdefghij"
    rng = random.Random(15)
    for case in range(60):
        vocabulary = list(dict.fromkeys(
            "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9))) for _ in range(80)))
        index = HotwordIndex(vocabulary, letters)
        words = []
        for _ in range(rng.randint(1, 4)):
            words.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))))
            planted = rng.choice(vocabulary)
            words.append(edited(planted, rng.randint(0, index.edit_budget(len(planted))), rng,
                                alphabet))
        hypothesis = " ".join(words)
        fast = {(m.hotword, m.distance) for m in index.retrieve(hypothesis, top_k=len(vocabulary))}
        assert fast == scan(vocabulary, hypothesis, index.max_error_rate), (case, hypothesis)


@pytest.mark.parametrize("hotword, hypothesis", [
    ("abc", "xx axc yy"),  # three units, middle one substituted: no bigram survives
    ("abcdef", "zz axcdyf zz"),  # six units, two spread-out edits: one bigram survives
    ("a", "b a c"),  # one unit
])
def test_hotwords_with_few_surviving_bigrams_are_found(hotword, hypothesis):
    index = HotwordIndex([hotword, "ghij"], letters)
    assert [m.hotword for m in index.retrieve(hypothesis)] == [hotword]


def test_chinese_hotword_with_its_middle_unit_substituted_is_found(word_pieces):
    # 阿里 is a1 l i3; 阿米 (a1 m i3) differs in the middle unit only and shares no bigram with it
    index = HotwordIndex(random_chinese_terms(500, seed=3) + ["阿里"], word_pieces)
    assert "阿里" in {m.hotword for m in index.retrieve("我们去阿米参观", top_k=1000)}


def test_index_agrees_with_the_vectorised_scan_and_shortlists(word_pieces):
    vocabulary = random_chinese_terms(3000, seed=1)
    index = HotwordIndex(vocabulary + ["阿里巴巴"], word_pieces)
    rng = random.Random(2)
    for _ in range(5):
        hypothesis = "".join(rng.choice(COMMON_HAN) for _ in range(30)) + "阿里八八"
        fast = index.retrieve(hypothesis, top_k=1000)
        assert fast == index.retrieve_brute_force(hypothesis, top_k=1000)
        assert "阿里巴巴" in {m.hotword for m in fast}
        # the index verifies a minority of the vocabulary (exactness costs: a 4-unit hotword
        # with a one-edit budget needs a single shared bigram)
        assert len(index.shortlist(index.hypothesis_ids(hypothesis))) < len(index) / 3


def test_hotword_without_letters_is_refused(word_pieces):
    with pytest.raises(FunfactoryError, match="no letters"):
        HotwordIndex(["!!!"], word_pieces)


def test_levenshtein():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3


def test_retrieval_matches_in_the_units_the_ctc_head_writes():
    from funfactory.model.ctc import CTCVocab
    from funfactory.model.hotword import ctc_units, letters

    llm, tokenizer = _tiny_llm()
    texts = ["the metrics are collected by prometheus every fifteen seconds"] * 50

    class Model:  # the two attributes `ctc_units` reads
        def __init__(self, size):
            self.tokenizer, self.ctc_vocab = tokenizer, CTCVocab.build(tokenizer, texts, size)

    characters, pieces = Model(257), Model(400)
    assert characters.ctc_vocab.characters_only and not pieces.ctc_vocab.characters_only
    assert ctc_units(characters) is letters
    assert ctc_units(pieces)("prometheus") == tokenizer_word_pieces(tokenizer)("prometheus")
    # a character head's misspelling keeps most letters of the name, and few of its word pieces
    vocabulary, heard = ["Prometheus", "Grafana", "Kubernetes"], "the meatrics are colected by prome ths"
    assert [m.hotword for m in HotwordIndex(vocabulary, letters).retrieve(heard)] == ["Prometheus"]
    assert HotwordIndex(vocabulary, tokenizer_word_pieces(tokenizer)).retrieve(heard) == []
