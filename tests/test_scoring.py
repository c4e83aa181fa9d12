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


def _tts_test_shards(out_dir, count=3, hotwords=()):
    from funfactory.shards.schema import new_meta
    from funfactory.shards.writer import ShardWriter
    from tests.eval_speech import SENTENCES, speech

    with ShardWriter(out_dir, "evalset", "test") as writer:
        for i, audio in enumerate(speech()[:count]):
            meta = new_meta(key=f"utt{i}", text=SENTENCES[i], language="en",
                            duration=len(audio) / 16000, task="test", source_id=f"s{i}",
                            uri=f"file:///s{i}.wav", pipeline="test", version="0",
                            config_sha256="0" * 64, augment={"snr_db": 5.0 * i})
            meta["prompt"]["hotwords"] = list(hotwords)
            writer.write(meta, audio)
    return out_dir


def test_eval_score_and_report_commands(tmp_path):
    import json

    from funfactory.cli import main
    from tests.eval_speech import SENTENCES

    shards = _tts_test_shards(tmp_path / "shards", hotwords=["finance"])
    hyp = tmp_path / "hyp.jsonl"
    hyp.write_text("\n".join(json.dumps({"key": f"utt{i}", "text": t}) for i, t in enumerate(
        [SENTENCES[0], SENTENCES[1].replace("finance", "fine ants"), ""])) + "\n")
    assert main(["eval", "score", "--test", str(shards), "--hyp", str(hyp), "--system", "sys-a",
                 "--test-set", "tts", "--out", str(tmp_path / "results")]) == 0
    record = json.loads((tmp_path / "results" / "sys-a__tts__offline.json").read_text())
    assert record["metric"] == "wer" and len(record["utterances"]) == 3
    third = len(SENTENCES[2].split())
    assert record["deletions"] == third
    assert record["hotword_recall"] == 0.0
    assert main(["eval", "report", "--results", str(tmp_path / "results"),
                 "--out", str(tmp_path / "report")]) == 0
    table = (tmp_path / "report" / "error_rates.md").read_text()
    assert "| tts | offline |" in table
    for name in ("error_rate_by_condition.png", "error_rate_by_duration.png",
                 "error_rate_by_snr.png", "hotword_recall.md"):
        assert (tmp_path / "report" / name).exists()


@pytest.mark.slow
def test_eval_run_decodes_with_a_real_backend(tmp_path):
    import json

    from funfactory.cli import main

    shards = _tts_test_shards(tmp_path / "shards", count=2)
    assert main(["eval", "run", "--system", "backend:pocketsphinx", "--test", str(shards),
                 "--out", str(tmp_path / "results"), "--test-set", "tts"]) == 0
    record = json.loads((tmp_path / "results" / "pocketsphinx__tts__offline.json").read_text())
    assert 0.0 < record["rtf"] < 5.0
    assert record["rate"] < 0.6  # clean TTS: pocketsphinx gets most words


@pytest.mark.slow
def test_eval_run_decodes_with_our_model_offline_and_streaming(tmp_path):
    """The model:/streaming: systems load a saved (untrained, tiny) model and go through the
    offline and chunked decoders; the score is garbage but every utterance is decoded and timed."""
    import json

    from funfactory.cli import main
    from funfactory.model.checkpoint import save_model
    from tests.conftest_model import tiny_model

    model = tiny_model(chunk_frames=12)
    save_model(model, tmp_path / "tiny", copy_llm=False)
    chunk_ms = 12 * model.encoder_frame_seconds * 1000
    shards = _tts_test_shards(tmp_path / "shards", count=2)
    for system, condition in ((f"model:{tmp_path / 'tiny'}", "offline"),
                              (f"streaming:{tmp_path / 'tiny'}@{chunk_ms:g}", "streaming")):
        assert main(["eval", "run", "--system", system, "--test", str(shards), "--test-set", "tts",
                     "--out", str(tmp_path / "results"), "--batch-size", "2"]) == 0
        record = json.loads((tmp_path / "results" / f"tiny-llm__tts__{condition}.json").read_text())
        assert len(record["utterances"]) == 2 and record["missing_hypotheses"] == 0
        assert record["rtf"] > 0


def test_a_mixed_language_set_is_scored_by_mixed_error_rate_and_per_language():
    from funfactory.eval.evaluate import evaluate

    def ref(key, text, language):
        return {"key": key, "reference": text, "language": language, "duration": 1.0,
                "snr_db": None, "hotwords": []}
    references = [ref("a", "the budget review starts at nine", "en"),
                  ref("b", "我们明天开会", "zh")]
    record = evaluate(references, {"a": "the budget review starts at nine",
                                   "b": "我们后天开会"}, "sys", "mixed")
    assert record["metric"] == "mer"
    assert record["by_language"]["en"] == {"metric": "wer", "rate": 0.0, "utterances": 1}
    assert record["by_language"]["zh"]["metric"] == "cer"
    assert record["by_language"]["zh"]["rate"] == pytest.approx(1 / 6)
    single = evaluate(references[:1], {"a": "the budget review"}, "sys", "en-only")
    assert single["metric"] == "wer" and "by_language" not in single
