"""The GRPO rewards of section 4.4.2 on hand-made hypotheses."""

from __future__ import annotations

import pytest

from funfactory.eval.repetition import excess_repetition_tokens, repetition_loops
from funfactory.training.rewards import (RewardConfig, RewardFunction, RewardInput,
                                         accuracy_reward, hallucination_reward, keyword_reward,
                                         language_matches, total_reward)

REF = "please send the deployment notes to kubernetes team"


def test_perfect_hypothesis_gets_full_accuracy_and_keywords():
    r = total_reward("Please send the deployment notes to Kubernetes team.",
                     RewardInput(REF, "en", ["Kubernetes"]))
    assert r.r1_accuracy == 1.0 and r.r2_keywords == 1.0 and r.r3_hallucination == 0.0
    assert r.language_match and r.total == 2.0


def test_substitution_costs_one_over_reference_length():
    r1, rate = accuracy_reward("please send the deployment notes to kubernetes tram", REF, "en")
    assert rate == pytest.approx(1 / 8)
    assert r1 == pytest.approx(1 - 1 / 8)


def test_accuracy_is_clipped_at_zero_for_long_garbage():
    r1, rate = accuracy_reward("a b c d e f g h i j k l m n o p q", "hello world", "en")
    assert rate > 1 and r1 == 0.0


def test_chinese_is_scored_per_character():
    r1, rate = accuracy_reward("我们明天开会", "我们今天开会", "zh")
    assert rate == pytest.approx(1 / 6) and r1 == pytest.approx(5 / 6)


def test_missing_keyword_loses_recall():
    hyp = "please send the deployment notes to the team"
    assert keyword_reward(hyp, REF, ["kubernetes"], "en") == pytest.approx(0.5)  # recall 0, acc 1
    assert keyword_reward(REF, REF, ["kubernetes"], "en") == 1.0


def test_inserted_keyword_loses_accuracy():
    ref = "please send the deployment notes to the team"
    hyp = "please send the kubernetes deployment notes to the team"
    assert keyword_reward(hyp, ref, ["Kubernetes"], "en") == pytest.approx(0.5)  # recall 1, acc 0
    assert keyword_reward(ref, ref, ["Kubernetes"], "en") == 1.0


def test_keywords_from_an_extractor_are_extracted_once_per_reference():
    calls = []

    def extractor(text):
        calls.append(text)
        return ["kubernetes"]

    reward = RewardFunction(extractor=extractor)
    target = RewardInput(REF, "en")
    out = reward([REF, "please send the deployment notes to team"], target)
    assert [r.r2_keywords for r in out] == [1.0, 0.5]
    reward([REF], target)
    assert calls == [REF]


def test_repetition_loop_is_penalised_in_proportion_to_its_length():
    ref = "thank you for coming"
    short = "thank you thank you thank you for coming"
    long = "thank you thank you thank you thank you thank you for coming"
    r_short, n_short = hallucination_reward(short, ref, "en", alpha=0.1, length_floor=1)
    r_long, n_long = hallucination_reward(long, ref, "en", alpha=0.1, length_floor=1)
    assert n_short == 4 and n_long == 8
    assert r_short == pytest.approx(-0.1 * 4 / 4) and r_long == pytest.approx(-0.1 * 8 / 4)
    # a reference shorter than the floor counts as floor tokens long
    assert hallucination_reward(long, ref, "en", length_floor=16)[0] == pytest.approx(-8 / 16)
    assert hallucination_reward(ref, ref, "en") == (0.0, 0)


def test_real_repetitions_in_the_reference_are_not_hallucinations():
    ref = "no no no no I said no"
    assert repetition_loops(ref)  # the reference itself loops
    assert excess_repetition_tokens(ref, ref) == 0
    assert excess_repetition_tokens("no no no no no no I said no", ref) == 2


def test_chinese_loop_is_found():
    loops = repetition_loops("谢谢观看谢谢观看谢谢观看谢谢观看")
    assert loops and loops[0].unit == ("谢", "谢", "观", "看") and loops[0].count == 4


def test_text_on_noise_only_input_is_a_hallucination():
    target = RewardInput("", "en")
    blank = total_reward("", target)
    spoken = total_reward("thank you for watching", target)
    longer = total_reward("thank you for watching see you next time bye", target)
    assert blank.r1_accuracy == 1.0 and blank.r3_hallucination == 0.0 and not blank.hallucinated
    assert spoken.hallucinated_tokens == 4 and spoken.r3_hallucination == pytest.approx(-4 / 8)
    assert longer.r3_hallucination == -1.0  # 9 tokens: past the floor, at the cap
    assert spoken.r1_accuracy == 0.0 and longer.total < spoken.total < blank.total


def test_wrong_language_overrides_everything_with_minus_one():
    r = total_reward("我们明天开会", RewardInput(REF, "en", ["kubernetes"]))
    assert not r.language_match and r.total == -1.0 and r.r4_language == -1.0
    zh = RewardInput("我们明天三点半开会讨论Kubernetes", "zh")
    assert total_reward("we meet tomorrow", zh).total == -1.0
    assert total_reward("我们明天3:30开会讨论Kubernetes", zh).language_match


def test_language_match_rules():
    assert language_matches("我们讨论 kubernetes", "zh-en")
    assert language_matches("just english", "zh-en")
    assert language_matches("", "zh") and language_matches("123", "en")
    assert not language_matches("hello", "zh")
    assert language_matches("こんにちは hello", "ja")  # a language the reward cannot judge


def test_total_is_the_sum_when_the_language_matches():
    cfg = RewardConfig(hallucination_alpha=0.5)
    target = RewardInput("thank you for coming to kubernetes day", "en", ["kubernetes"])
    hyp = "thank you thank you thank you for coming to day"
    r = total_reward(hyp, target, cfg)
    assert r.total == pytest.approx(r.r1_accuracy + r.r2_keywords + r.r3_hallucination)
    assert r.r1_accuracy < 1 and r.r2_keywords == 0.5 and r.r3_hallucination < 0


def test_a_hypothesis_the_itn_grammar_rejects_is_still_scored():
    r = total_reward("fuller')\" two", RewardInput("fuller two", "en"))
    assert r.r1_accuracy == 1.0 and r.language_match
