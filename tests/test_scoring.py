"""WER / CER / mixed error rate on hand-made cases, empties, agreement, hotword metrics."""

import jiwer
import pytest

from funfactory.errors import FunfactoryError
from funfactory.eval.hotword_metrics import hotword_metrics
from funfactory.eval.scoring import (
    cer,
    metric_for_language,
    mixed_error_rate,
    pairwise_agreement,
    score,
    wer,
)


def test_wer_counts_substitution_deletion_insertion():
    result = wer(["the cat sat on a red mat"], ["the bat sat on red mat today"])
    u = result.utterances[0]
    assert (u.substitutions, u.deletions, u.insertions, u.hits) == (1, 1, 1, 5)
    assert result.rate == pytest.approx(3 / 7)


def test_wer_ignores_case_punctuation_and_number_spelling():
    result = wer(["It's twenty five percent, OK?"], ["it's 25% ok"])
    assert result.errors == 0


def test_cer_per_han_character_after_traditional_and_full_width():
    result = cer(["我們明天開會。"], ["我们明天开回"])  # one wrong character
    assert result.reference_tokens == 6
    assert result.substitutions == 1 and result.rate == pytest.approx(1 / 6)


def test_cer_reads_spoken_numbers_like_written_ones():
    assert cer(["我们明天三点半开会"], ["我们明天3:30开会"]).errors == 0


def test_mixed_error_rate_counts_english_words_whole():
    ref = "我们讨论 Kubernetes 的 deployment 问题"
    hyp = "我们讨论 kubernetes 的 department 问题"
    result = mixed_error_rate([ref], [hyp])
    # tokens: 我 们 讨 论 kubernetes 的 deployment 问 题 -> 9, one substitution
    assert result.reference_tokens == 9
    assert result.substitutions == 1 and result.rate == pytest.approx(1 / 9)


def test_mixed_error_rate_on_dropped_english_word():
    result = mixed_error_rate(["用 Docker compose 部署"], ["用部署"])
    assert (result.deletions, result.reference_tokens) == (2, 5)


def test_auto_metric_by_language():
    assert metric_for_language("en") == "wer"
    assert metric_for_language("zh") == "cer"
    assert metric_for_language("zh-en") == "mer"
    assert metric_for_language("fr") == "wer"
    assert score(["a b"], ["a c"], language="en").metric == "wer"


def test_empty_reference_and_empty_hypothesis():
    result = score({"noise": "", "silence": "", "speech": "你好世界", "dropped": "hello world"},
                   {"noise": "谢谢观看", "silence": "。", "speech": "你好世界", "dropped": ""},
                   metric="mer")
    by_key = {u.key: u for u in result.utterances}
    assert by_key["noise"].insertions == 4 and by_key["noise"].rate == 1.0
    assert by_key["noise"].hallucination
    assert by_key["silence"].errors == 0 and by_key["silence"].rate == 0.0
    assert not by_key["silence"].hallucination
    assert by_key["dropped"].deletions == 2 and by_key["dropped"].rate == 1.0
    assert result.reference_tokens == 6
    assert result.errors == 6 and result.rate == pytest.approx(1.0)
    assert result.hallucinations == 1


def test_corpus_with_no_reference_tokens():
    assert score([""], [""]).rate == 0.0
    assert score([""], ["oops"]).rate == 1.0
    assert score([], []).rate == 0.0


def test_corpus_rate_is_pooled_not_averaged():
    result = wer(["a b c d", "e"], ["a b c d", "x"])
    assert result.rate == pytest.approx(1 / 5)


def test_agrees_with_jiwer_on_already_normalised_words():
    refs = ["alpha bravo charlie delta", "echo fox", "golf hotel india"]
    hyps = ["alpha bravo charlie", "echo fix fox", "hotel india"]
    assert wer(refs, hyps).rate == pytest.approx(jiwer.wer(refs, hyps))


def test_spoken_digit_strings_are_read_as_numbers_on_both_sides():
    assert wer(["call one two three four"], ["call 1234"]).errors == 0


def test_mismatched_inputs_are_refused():
    with pytest.raises(FunfactoryError, match="hypotheses"):
        score(["a", "b"], ["a"])
    with pytest.raises(FunfactoryError, match="no hypothesis"):
        score({"u1": "a"}, {"u2": "a"})
    with pytest.raises(FunfactoryError, match="unknown metric"):
        score(["a"], ["a"], metric="bleu")


def test_pairwise_agreement_picks_the_medoid():
    agreement = pairwise_agreement({
        "whisper-base": "我们明天三点半开会",
        "whisper-tiny": "我们明天3:30开会",
        "pocketsphinx": "我们今天开",
    }, language="zh")
    assert agreement.matrix[0][1] == 0.0 and agreement.matrix[1][0] == 0.0
    assert agreement.matrix[0][2] > 0.0
    assert agreement.most_agreed() == "whisper-base"
    assert 0.0 < agreement.mean < 1.0
    assert "mean_pairwise_cer" in agreement.as_dict()


def test_pairwise_agreement_of_one_system():
    agreement = pairwise_agreement({"only": "hello"}, language="en")
    assert agreement.mean == 0.0 and agreement.most_agreed() == "only"


def test_hotword_recall_accuracy_and_false_alarms():
    refs = ["请打开 Kubernetes 控制台", "通义千问发布了新模型", "今天天气很好"]
    hyps = ["请打开 kubernetes 控制台", "通义千文发布了新模型", "今天天气很好 Kubernetes"]
    result = hotword_metrics(refs, hyps, ["Kubernetes", "通义千问"])
    assert result.reference_occurrences == 2
    assert result.recalled == 1 and result.recall == pytest.approx(0.5)
    assert result.false_alarms == 1
    # accuracy: utterances whose hotwords are all right (present, and none inserted)
    assert result.utterances_with_hotwords == 3
    assert result.accuracy == pytest.approx(1 / 3)
    assert result.per_hotword["通义千问"].recall == 0.0


def test_hotword_repeated_occurrences_counted_individually():
    result = hotword_metrics(["Docker and Docker again"], ["docker and again"], ["docker"])
    assert result.reference_occurrences == 2 and result.recalled == 1


def test_hotword_match_respects_word_boundaries_for_latin():
    result = hotword_metrics(["we use go here"], ["we use google here"], ["go"])
    assert result.recalled == 0


def test_report_tables_have_systems_as_columns(tmp_path):
    from funfactory.eval import report

    records = [
        {"system": "ours", "test_set": "meeting", "condition": "offline", "rate": 0.05},
        {"system": "whisper-base", "test_set": "meeting", "condition": "offline", "rate": 0.09},
        {"system": "ours", "test_set": "meeting", "condition": "streaming", "rate": 0.07},
    ]
    table = report.pivot(records)
    assert table.columns == ("ours", "whisper-base")
    assert table.rows[1] == (("meeting", "streaming"), (0.07, None))
    markdown = report.write_markdown(table, tmp_path / "wer.md", title="WER").read_text()
    assert "| test_set | condition | ours | whisper-base |" in markdown
    assert "| meeting | offline | **5.00** | 9.00 |" in markdown
    assert "| meeting | streaming | 7.00 | - |" in markdown
    csv_text = report.write_csv(table, tmp_path / "wer.csv").read_text().splitlines()
    assert csv_text[0] == "test_set,condition,ours,whisper-base"
    assert csv_text[2] == "meeting,streaming,0.07,"


def test_report_plots_are_pngs(tmp_path):
    from funfactory.eval import report

    utterances = [
        {"system": "ours", "errors": 1, "reference_tokens": 10, "duration": 1.5, "snr_db": 3.0},
        {"system": "ours", "errors": 3, "reference_tokens": 10, "duration": 1.0, "snr_db": 18.0},
        {"system": "ours", "errors": 0, "reference_tokens": 20, "duration": 12.0, "snr_db": None},
    ]
    rates = report.bucketed_rates(utterances, "duration", report.DURATION_EDGES_S, "s")
    assert rates["ours"] == {"0-2s": pytest.approx(0.2), "10-20s": 0.0}
    assert report.bucketed_rates(utterances, "snr_db", report.SNR_EDGES_DB, "dB")["ours"] == {
        "0-5dB": pytest.approx(0.1), "15-20dB": pytest.approx(0.3)}
    table = report.pivot([{"system": "ours", "test_set": "a", "condition": "clean", "rate": 0.1}])
    for path in (report.plot_by_condition(table, tmp_path / "c.png"),
                 report.plot_by_duration(utterances, tmp_path / "d.png"),
                 report.plot_by_snr(utterances, tmp_path / "s.png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
