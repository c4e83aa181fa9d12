"""The shared normalisation: label form, scoring form, ITN per script run, tokens."""

import pytest

from funfactory.eval import itn, textnorm
from funfactory.eval.textnorm import (
    detect_language,
    normalize_for_scoring,
    normalize_label,
    scoring_tokens,
    split_runs,
    tokens,
)

# Raw transcripts as ASR systems and humans write them: spoken numbers, full width, traditional,
# mixed scripts, odd spacing and punctuation.
RAW_TEXTS = [
    "我们明天三点半开会讨论 kubernetes",
    "二零二五年三月十五号下午三点半",
    "我們明天開會，討論ＧＰＴ４！",
    "It is twenty five percent, OK?",
    "three thirty pm",
    "我用 one point two 版本",
    "二〇二五年",
    "Don't stop — please.",
    "价格是1,000元",
    "上午十点二十  开会",
    "百分之五十的人说 yes",
    "I have Twenty Three apples",
    "用 GPT-4 turbo 写代码。",
    "电话是一三八零零一三八零零零",
    "",
    "   ",
]


@pytest.mark.parametrize("raw", RAW_TEXTS)
def test_labelling_and_scoring_normalise_identically(raw):
    """What the labelling pipeline writes (normalize_label) scores exactly as the raw text."""
    label = normalize_label(raw)
    assert normalize_for_scoring(label) == normalize_for_scoring(raw)
    assert scoring_tokens(label) == scoring_tokens(raw)


def test_label_form_keeps_case_and_punctuation_but_writes_numbers():
    assert normalize_label("我们明天三点半开会讨论 Kubernetes") == "我们明天3:30开会讨论Kubernetes"
    assert normalize_label("It is twenty five percent, OK?") == "It is 25%, OK?"


def test_full_width_traditional_case_and_punctuation_are_unified():
    assert normalize_for_scoring("我們明天開會，討論ＧＰＴ４！") == "我们明天开会讨论gpt4"
    assert normalize_for_scoring("Hello,   WORLD!!") == "hello world"
    assert normalize_for_scoring("「你好」。") == "你好"


def test_spoken_and_written_numbers_score_the_same():
    assert normalize_for_scoring("三点半") == normalize_for_scoring("3:30")
    assert normalize_for_scoring("three thirty PM") == normalize_for_scoring("3:30 p.m.")
    assert normalize_for_scoring("百分之五十") == normalize_for_scoring("50%")
    assert normalize_for_scoring("twenty five percent") == normalize_for_scoring("25%")
    assert normalize_for_scoring("一千二百三十四块") == normalize_for_scoring("1,234块")


def test_number_punctuation_survives_but_other_punctuation_goes():
    assert tokens(normalize_for_scoring("版本是 1.5，时间 3:30。"), "zh") == [
        "版", "本", "是", "1.5", "时", "间", "3:30"]
    assert normalize_for_scoring("don't stop-now") == "don't stop now"


def test_wetext_date_time_quirk_is_repaired():
    """wetext glues a date to the time after it: 2025/03/153:30p.m."""
    assert itn.normalizer("zh").normalize("二零二五年三月十五号下午三点半") == "2025/03/153:30p.m."
    assert normalize_label("二零二五年三月十五号下午三点半") == "2025/03/15下午3:30"
    assert normalize_label("二零二五年三月十五号三点半") == "2025/03/15 3:30"
    assert normalize_label("二〇二五年") == "2025年"


def test_itn_is_per_script_run_and_code_switch_aware():
    assert normalize_label("我用 one point two 版本") == "我用1.2版本"
    assert normalize_label("他花了三百块买 twenty five GB 的流量") == "他花了300块买25 GB的流量"
    runs = split_runs("讨论 kubernetes 的 one point two 版本")
    assert [r.kind for r in runs] == ["han", "latin", "han", "latin", "han"]
    assert "".join(r.text for r in runs) == "讨论 kubernetes 的 one point two 版本"


def test_digits_against_han_stay_with_the_chinese_run():
    runs = split_runs("ok 3月")
    assert runs[0].text == "ok" and runs[-1].kind == "han" and "3" in runs[-1].text


def test_tokens_han_characters_and_latin_words():
    text = normalize_for_scoring("我们讨论 Kubernetes 和 Docker compose")
    assert tokens(text, "zh-en") == ["我", "们", "讨", "论", "kubernetes", "和", "docker", "compose"]
    assert tokens("hello big world", "en") == ["hello", "big", "world"]
    assert tokens("", "zh") == []


def test_detect_language():
    assert detect_language("我们开会") == "zh"
    assert detect_language("we meet") == "en"
    assert detect_language("我们用 Docker") == "zh-en"
    assert detect_language("3:30 !") == ""


def test_itn_normalisers_are_built_once():
    assert itn.normalizer("zh") is itn.normalizer("zh")
    assert textnorm.normalize_label("一点五") == "1.5"


def test_itn_only_touches_numbers():
    """The English grammar's e-mail rule glues words; runs without numbers skip the grammar."""
    assert normalize_label("send it to john at gmail dot com") == "send it to john at gmail dot com"
    assert normalize_label("smith has twenty one cats") == "smith has 21 cats"
    assert normalize_label("我们一起去") == "我们一起去"


@pytest.mark.parametrize("raw", RAW_TEXTS[:14])
def test_label_pipeline_itn_step_scores_like_the_raw_hypothesis(raw):
    """The labelling pipeline's own ITN step (pipelines/label/itn.py) writes labels whose
    scoring form equals the scoring form of the hypothesis it was given."""
    from funfactory.pipelines.label.config import ItnConfig
    from funfactory.pipelines.label.itn import ApplyItn

    segment = {"label_text": raw, "language": detect_language(raw), "labels": {},
               "stage_seconds": {}}
    ((_, _, labelled),) = list(ApplyItn(ItnConfig(enabled=True)).process(("unit", "segment", segment)))
    assert labelled["text"] == normalize_label(raw)
    assert normalize_for_scoring(labelled["text"]) == normalize_for_scoring(raw)


def test_itn_keeps_a_run_the_wetext_grammar_cannot_tokenise():
    from funfactory.eval.itn import inverse_normalize

    odd = "fuller')\" two"
    assert inverse_normalize(odd).startswith("fuller")
    assert inverse_normalize("we met at two thirty") != "we met at two thirty"


@pytest.mark.parametrize("spoken, written", [
    ("on the fifteenth of March", "on the 15th of March"),
    ("the twenty first of May", "the 21st of May"),
    ("March fifteenth", "March 15th"),
    ("the fifth floor", "the 5th floor"),
])
def test_a_spoken_ordinal_scores_equal_to_its_written_form(spoken, written):
    assert normalize_for_scoring(spoken) == normalize_for_scoring(written)
