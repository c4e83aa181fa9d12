"""The `cpu` size learns to recognise held-out sentences on a CPU (report sections 2, 4.1, 4.2)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


@pytest.mark.slow
def test_cpu_size_learns_held_out_sentences(tmp_path):
    """The demo's TTS speech (five training voices, cached), then the demo's two runs: the CTC
    head on the frozen Whisper encoder and SmolLM2 reading its hypothesis. The held-out
    sentences never occur in training. About 10 minutes on 2 quiet cores once the speech is
    cached."""
    from funfactory import demo_model
    from funfactory.cli import main
    from funfactory.demo_speech import build_speech, plan_speech

    speech = build_speech(plan_speech(0, []))
    run = SimpleNamespace(seed=0, out=tmp_path, path=lambda *p: tmp_path.joinpath(*p))
    # the demo's second stream is the label job's output; here the training speech stands in
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "label").symlink_to(speech / "train")
    init = None
    for name, stage, steps, lr, every, seconds in demo_model.RUNS:
        config = demo_model.train_config(run, speech, name, stage, steps, lr, every, seconds, init)
        assert main(["train", "sft", "--config", str(config)]) == 0
        init = tmp_path / "runs" / name / "final"
    result = demo_model.score_final(init, {"heldout": speech / "heldout"})["heldout"]
    # `make demo` (the same runs, its corpus's sentences held out too) measured on 120 held-out
    # utterances: CTC head CER 14.1 %, WER 45.1 %; LLM greedy WER 40.9 %, the model (the CTC head
    # choosing among 9 LLM transcripts) 31.4 % (a random model is above 100 %)
    assert result["ctc_cer"] < 0.2
    assert result["llm_wer"] < result["ctc_wer"]
    assert result["llm_wer"] < result["llm_greedy_wer"]  # the CTC head's choice helps
