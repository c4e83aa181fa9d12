"""The `cpu` size learns to recognise held-out sentences on a CPU (report sections 2, 4.1, 4.2)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


@pytest.mark.slow
def test_cpu_size_learns_held_out_sentences(tmp_path):
    """TTS speech from four voices (about 47 minutes, cached), then the demo's two runs: the CTC
    head on the frozen Whisper encoder and SmolLM2 reading its hypothesis. The held-out
    sentences never occur in training. About 30 minutes on 2 shared cores."""
    from funfactory import demo_model
    from funfactory.cli import main
    from funfactory.demo_speech import build_speech, plan_speech

    speech = build_speech(plan_speech(0, []))
    run = SimpleNamespace(seed=0, out=tmp_path, path=lambda *p: tmp_path.joinpath(*p))
    init = None
    for name, stage, steps, lr, every, seconds in demo_model.RUNS:
        config = demo_model.train_config(run, speech, name, stage, steps, lr, every, seconds, init)
        assert main(["train", "sft", "--config", str(config)]) == 0
        init = tmp_path / "runs" / name / "final"
    result = demo_model.score_final(init, speech / "heldout")
    # measured once on a shared 2-core machine: CTC head CER 18.1 %, WER 50.1 %; LLM WER 60.2 %
    # (the 40-step LLM run does not yet beat the CTC head; a random model is above 100 %)
    assert result["ctc_cer"] < 0.22
    assert result["ctc_wer"] < 0.6
    assert result["llm_wer"] < 0.8
