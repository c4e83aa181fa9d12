"""Code-switched speech (Fun-ASR section 5.4): term pools, the mixed-language check, the
template-slot and LLM generators, spliced and mixed voices, the Beam job, and whether Whisper
base hears the English term in the synthesized speech (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from funfactory.errors import FunfactoryError
from funfactory.eval.runs import split_runs
from funfactory.synth import codeswitch as cs
from tests.conftest_llm import gemma3  # noqa: F401  (session fixture)


def _mixes(sentence: str, term: str) -> bool:
    kinds = {run.kind for run in split_runs(sentence)}
    return {"han", "latin"} <= kinds and cs.term_in(term, sentence)


def test_shipped_pool_has_english_terms_in_four_domains():
    pool = cs.load_term_pool()
    assert set(cs.DOMAINS) <= set(pool) and all(len(pool[d]) >= 20 for d in cs.DOMAINS)


def test_user_pool_file_and_bad_terms(tmp_path):
    good = tmp_path / "terms.tsv"
    good.write_text("medicine\tMRI\nmedicine\tCT scan\nlaw\tNDA\n", encoding="utf-8")
    assert cs.load_term_pool(good) == {"medicine": ["MRI", "CT scan"], "law": ["NDA"]}
    bad = tmp_path / "bad.tsv"
    bad.write_text("medicine\t核磁共振\n", encoding="utf-8")
    with pytest.raises(FunfactoryError, match="not English terms"):
        cs.load_term_pool(bad)


def test_check_rejects_sentences_that_do_not_mix_or_lose_the_term():
    assert cs.check_codeswitch("我们下周要把服务迁移到Kubernetes集群上。", "Kubernetes") is None
    assert cs.check_codeswitch("我们下周要把服务迁移到容器集群上。", "Kubernetes") == "no_latin_run"
    assert cs.check_codeswitch("We move the service to Kubernetes.", "Kubernetes") == "no_han_run"
    assert cs.check_codeswitch("我们下周要把服务迁移到Docker集群上。", "Kubernetes") == "term_missing"
    assert cs.check_codeswitch("这个APIs很好用，文档也很清楚。", "API") == "term_missing"
    assert cs.check_codeswitch("好的GPU", "GPU") == "too_little_chinese"


def test_template_sentences_mix_han_and_latin_runs_and_hold_their_term():
    draws = cs.sample_terms(cs.load_term_pool(), 60, seed=5)
    assert {d.domain for d in draws} == set(cs.DOMAINS)
    results = cs.TemplateSentenceWriter().write(draws)
    assert all(r.sentence and r.generator == "template-slot" for r in results)
    assert all(_mixes(r.sentence, r.draw.term) for r in results)
    assert draws == cs.sample_terms(cs.load_term_pool(), 60, seed=5)


def test_spliced_and_mixed_voices_give_16k_speech():
    sentence = "这个API的文档写得不清楚。"
    spliced = cs.synthesize_codeswitch(sentence, "espeak-cmn+espeak-en", seed=1)
    mixed = cs.synthesize_codeswitch(sentence, "espeak-cmn", seed=1)
    for audio in (spliced, mixed):
        assert audio.dtype == np.float32 and 1.0 < audio.size / 16000 < 10.0
        assert 0.005 < float(np.sqrt(np.mean(audio ** 2))) and np.max(np.abs(audio)) <= 1.0
    assert np.array_equal(spliced, cs.synthesize_codeswitch(sentence, "espeak-cmn+espeak-en", 1))


def test_codeswitch_job_writes_checked_samples(tmp_path):
    from funfactory.pipelines.codeswitch.pipeline import CodeSwitchConfig, run_codeswitch
    from funfactory.shards.reader import ShardReader

    config = CodeSwitchConfig(samples=6, unit_size=3, generators=["template-slot"],
                              voice_plans=["espeak-cmn", "espeak-cmn-f+espeak-en"])
    report = run_codeswitch(tmp_path / "out", config)
    samples = list(ShardReader(tmp_path / "out"))
    assert report["samples"] == len(samples) == 6 and not report["unaccounted"]
    for sample in samples:
        meta = sample.meta
        assert meta["task"] == "codeswitch" and meta["language"] == "zh-en"
        assert _mixes(meta["raw_text"], meta["codeswitch"]["term"])
        assert meta["synth"]["generator"] == meta["lineage"]["generator"] == "template-slot"
        assert meta["codeswitch"]["voice_plan"] in config.voice_plans
        assert abs(sample.audio.size / 16000 - meta["duration"]) < 0.01
    assert report["extra"]["yield"]["template_share_of_samples"] == 1.0


@pytest.mark.slow
def test_llm_sentences_are_checked_and_the_yield_is_reported(gemma3, tmp_path):  # noqa: F811
    from funfactory.synth.llm import LLMClient, RequestCache

    llm = LLMClient(gemma3, RequestCache(tmp_path / "c.sqlite"))
    draws = cs.sample_terms(cs.load_term_pool(), 4, seed=2)
    results = cs.LLMSentenceWriter(llm, "fewshot", max_tokens=32).write(draws)
    for result in results:
        assert (result.sentence is None) == (result.reason is not None)
        if result.sentence:
            assert _mixes(result.sentence, result.draw.term)
    print(f"LLM code-switch yield: {sum(r.sentence is not None for r in results)}/{len(results)}",
          [(r.draw.term, r.raw, r.reason) for r in results])


#: Whisper base writes the English term in few of these samples (it is weak on
#: code-switched speech). Measured on the 8 samples below: kokoro-alpha 1/8 ("Cashflow"),
#: espeak-cmn+hibari-en 2/8 ("NFL", "Cashflow"); kokoro-alpha+hibari-en 0/8, espeak-cmn 0/8,
#: espeak-cmn-f+piper-joe-en 0/8. The floor asks for at least one recovered term per plan.
RECOVERY_FLOOR = {"kokoro-alpha": 0.125, "espeak-cmn+hibari-en": 0.125}


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("plan", sorted(RECOVERY_FLOOR))
def test_whisper_base_recovers_the_english_term(plan):
    from funfactory.asr.whisper import whisper_base

    draws = cs.sample_terms(cs.load_term_pool(), 8, seed=1)
    results = cs.TemplateSentenceWriter().write(draws)
    audios = [cs.synthesize_codeswitch(r.sentence, plan, seed=r.draw.seed) for r in results]
    hypotheses = whisper_base().load().transcribe_batch(audios, ["zh"] * len(audios))
    recovered = [cs.term_recovered(r.draw.term, h.text) for r, h in zip(results, hypotheses)]
    share = sum(recovered) / len(recovered)
    print(f"{plan}: Whisper base recovered the term in {sum(recovered)}/{len(recovered)}",
          [(r.draw.term, h.text) for r, h in zip(results, hypotheses)])
    assert share >= RECOVERY_FLOOR[plan]
