"""Contextual SFT data (Fun-ASR section 4.3): keyword checks, the keyword-match filter, keyword
retrieval, five irrelevant pieces, previous-segment prompts, and the Beam job on the embedded
corpus. The LLM steps with the real packaged Gemma-3-270M are slow-marked."""

from __future__ import annotations

import json

import pytest

from funfactory.synth import contextual as cx
from tests.conftest_llm import gemma3  # noqa: F401  (session fixture)

TRANSCRIPT = "Alice from Finance said the stripe billing integration goes live in March."


def test_extracted_keywords_must_occur_in_the_transcript():
    result = cx.check_keywords(["Alice", "alice", "Stripe", "Bob", "April", 7, TRANSCRIPT, ""],
                               TRANSCRIPT)
    assert result.keywords == ["Alice", "Stripe"]
    reasons = {d["keyword"]: d["reason"] for d in result.dropped}
    assert reasons["Bob"] == reasons["April"] == "not_in_transcript"
    assert reasons["alice"] == "duplicate" and reasons["7"] == "not_text"
    assert reasons[TRANSCRIPT.rstrip(".")] == "copies_transcript"
    assert all(cx.keyword_in(k, TRANSCRIPT) for k in result.keywords)
    chinese = cx.check_keywords(["kubernetes", "部署方案", "上海"], "明天讨论 Kubernetes 的部署方案。")
    assert chinese.keywords == ["kubernetes", "部署方案"]


def test_keyword_filter_keeps_only_pieces_with_their_keywords():
    pieces = ["Alice runs the finance sync.", "We talk about payments today.",
              "The stripe launch is planned for March.", "the STRIPE launch is planned for march.",
              TRANSCRIPT, "", "x" * 300]
    kept, dropped = cx.filter_pieces(pieces, ["Alice", "stripe", "March"], TRANSCRIPT, "llm")
    assert [p.text for p in kept] == ["Alice runs the finance sync.",
                                      "The stripe launch is planned for March."]
    assert kept[1].keywords == ["stripe", "March"]
    assert all(p.keywords and all(cx.keyword_in(k, p.text) for k in p.keywords) for p in kept)
    assert sorted(d["reason"] for d in dropped) == ["copies_transcript", "duplicate", "empty",
                                                    "missing_keywords", "too_long"]
    fallback, _ = cx.filter_pieces(["We talk about payments today."], [], TRANSCRIPT, "llm-topic",
                                   require_keywords=False)
    assert [p.text for p in fallback] == ["We talk about payments today."]


def test_retrieval_finds_other_transcripts_with_the_keywords():
    pool = [("rec1", "Alice joined the team in 2023. The weather was nice."),
            ("rec2", "The stripe dashboard shows every payment."),
            ("rec3", TRANSCRIPT), ("rec4", "Nothing relevant here.")]
    retrieval = cx.KeywordRetrieval(pool)
    found = retrieval.retrieve(TRANSCRIPT, ["Alice", "stripe"], "rec9", limit=5, seed=0)
    assert sorted(p.text for p in found) == ["Alice joined the team in 2023.",
                                             "The stripe dashboard shows every payment."]
    assert all(p.generator == "retrieval-keyword" and p.keywords for p in found)
    assert retrieval.retrieve(TRANSCRIPT, ["stripe"], "rec2", 5, 0) == []


def test_five_irrelevant_pieces_come_from_other_samples_without_the_keywords():
    pool = [(f"rec{i % 4}", f"Sentence number {i} about the weather.") for i in range(20)]
    pool += [("rec1", "Alice likes the weather."), ("rec0", "Our own piece.")]
    picked = cx.sample_irrelevant(pool, "rec0", ["Alice"], TRANSCRIPT, seed=3)
    assert len(picked) == 5 and len({p.text for p in picked}) == 5
    assert all(p.origin != "rec0" and not p.relevant and "Alice" not in p.text for p in picked)
    assert picked == cx.sample_irrelevant(pool, "rec0", ["Alice"], TRANSCRIPT, seed=3)


def test_long_audio_is_split_with_the_previous_segment_as_prompt():
    utterances = [{"start": i * 6.0, "end": i * 6.0 + 4.5, "text": f"utterance {i}."}
                  for i in range(100)]  # 10 minutes
    segments = cx.segment_recording(utterances, "en", max_segment_s=20.0, max_recording_s=300.0)
    assert all(s.duration <= 20.0 + 2 * 0.15 for s in segments)
    assert " ".join(s.text for s in segments) == " ".join(u["text"] for u in utterances)
    windows = {s.window for s in segments}
    assert windows == {0, 1}
    for before, after in zip(segments, segments[1:]):
        if after.window == before.window:
            assert after.previous_text == before.text
        else:
            assert after.previous_text is None
    for window in windows:
        inside = [s for s in segments if s.window == window]
        assert inside[-1].end - inside[0].start <= 300.0 + 0.3


def _read(out):
    from funfactory.shards.reader import ShardReader
    return [s.meta for s in ShardReader(out, decode=False)]


def test_context_job_mixes_relevant_and_five_irrelevant_pieces(tmp_path):
    from funfactory.pipelines.context.config import ContextConfig
    from funfactory.pipelines.context.pipeline import run_context

    config = ContextConfig(generators=["retrieval-keyword"], max_segment_s=8.0,
                           only_units=["ff0-en-00", "ff0-zh-01", "ff0-zhen-01"])
    report = run_context(tmp_path / "out", config)
    metas = _read(tmp_path / "out")
    assert report["samples"] == len(metas) == report["extra"]["yields"]["segments"] > 0
    assert not report["unaccounted"]
    for meta in metas:
        pieces = meta["context"]["pieces"]
        relevant = [p for p in pieces if p["relevant"]]
        irrelevant = [p for p in pieces if not p["relevant"]]
        assert len(irrelevant) == 5 and meta["prompt"]["context"] == [p["text"] for p in pieces]
        assert len(relevant) == meta["context"]["relevant"]
        for piece in relevant:
            assert piece["keywords"] and all(cx.keyword_in(k, piece["text"]) for k in piece["keywords"])
        for piece in irrelevant:
            assert not any(cx.keyword_in(k, piece["text"]) for k in meta["context"]["keywords"])
        assert meta["task"] == "context" and meta["lineage"]["pipeline"] == "context"
    assert any(p["relevant"] for m in metas for p in m["context"]["pieces"])
    chained = [m for m in metas if m["prompt"]["previous_text"]]
    assert chained and report["extra"]["yields"]["samples_with_previous_text"] == len(chained)
    saved = json.loads((tmp_path / "out" / "_reports" / "context-report.json").read_text())
    assert saved["extra"]["yield"]["samples_with_relevant_context_share"] > 0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_gemma_keywords_occur_in_their_transcripts(gemma3, tmp_path):  # noqa: F811
    from funfactory.synth.llm import LLMClient, RequestCache

    llm = LLMClient(gemma3, RequestCache(tmp_path / "c.sqlite"))
    transcripts = ["Doctor Chen will review the MRI scans on Friday.",
                   "请在周五之前把PyTorch模型上传到阿里云。"]
    results = cx.KeywordExtractor(llm, "fewshot", max_tokens=16).extract(transcripts)
    for transcript, result in zip(transcripts, results):
        assert all(cx.keyword_in(k, transcript) for k in result.keywords)
    assert sum(len(r.keywords) for r in results) >= 2  # the model does extract


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_context_job_with_the_llm_replays_from_a_warm_cache(tmp_path):
    from funfactory.pipelines.context.config import ContextConfig
    from funfactory.pipelines.context.pipeline import run_context
    from funfactory.synth.llm import LLMConfig

    llm = LLMConfig(model="gemma3-270m", cache=str(tmp_path / "requests.sqlite"), threads=1)
    config = ContextConfig(llm=llm, only_units=["ff0-zh-00", "ff0-zhen-00"], max_segment_s=30.0,
                           keyword_max_tokens=16, context_max_tokens=32, pieces_per_sample=2)
    first = run_context(tmp_path / "first", config)["extra"]["yields"]
    assert first["llm_backend_calls"] > 0 and first["llm_cache_misses"] > 0
    second = run_context(tmp_path / "second", config)["extra"]["yields"]
    assert second["llm_backend_calls"] == 0 and second["llm_cache_misses"] == 0
    assert second["llm_cache_hits"] == first["llm_requests"]
    assert _read(tmp_path / "first") == _read(tmp_path / "second")
    for meta in _read(tmp_path / "second"):
        assert meta["synth"]["llm"]["model"] == "gemma3-270m"
        assert meta["synth"]["llm"]["keywords"]["prompt_version"]
        for piece in meta["context"]["pieces"]:
            if piece["relevant"]:
                assert all(cx.keyword_in(k, piece["text"]) for k in piece["keywords"])


def test_context_job_on_dask_keeps_every_segment(tmp_path):
    """The DaskRunner drops what a DoFn emits from finish_bundle (where BatchElements emits a
    bundle's last batch): the job's batches are cut in the driver, so no segment is lost."""
    from distributed import LocalCluster

    from funfactory.pipelines.common.runner import beam_options
    from funfactory.pipelines.context.config import ContextConfig
    from funfactory.pipelines.context.pipeline import run_context

    config = ContextConfig(generators=["retrieval-keyword"], max_segment_s=8.0,
                           only_units=["ff0-en-00"])
    direct = run_context(tmp_path / "direct", config)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        options = beam_options(runner="DaskRunner", dask_address=cluster.scheduler_address)
        dask = run_context(tmp_path / "dask", config, options=options)
    assert dask["extra"]["yields"]["segments"] == direct["extra"]["yields"]["segments"] > 0
    assert _read(tmp_path / "dask") == _read(tmp_path / "direct")
