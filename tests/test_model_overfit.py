"""A tiny model overfits a handful of real TTS utterances through both the CTC head and the LLM.

This is the end-to-end check that frontend, encoder, adaptor, CTC loss, prompt splicing, label
masking, generation and hotword prompting fit together: if any of them were wrong, the CER on the
training utterances would not reach zero within a short CPU run.
"""

import numpy as np
import pytest
import soxr
import torch

from funfactory.model.asr import set_trainable
from funfactory.model.cmvn import compute_global_cmvn
from funfactory.model.decode import DecodeOptions, transcribe, waveform_batch
from funfactory.model.hotword import HotwordIndex, levenshtein, tokenizer_word_pieces
from tests.conftest_model import tiny_model


def cer(hypotheses: list[str], references: list[str]) -> float:
    return sum(levenshtein(h, r) for h, r in zip(hypotheses, references)) / sum(map(len, references))


def overfit(model, clips, max_steps=240, check_every=20, lr=2e-3):
    """Train on `clips` until CTC and LLM CER are both below 0.02; return the last CERs."""
    texts = [t for t, _ in clips]
    audio = [a for _, a in clips]
    compute_global_cmvn(model.frontend, audio)
    set_trainable(model, ["encoder", "adaptor", "ctc", "llm"])
    model.llm.get_input_embeddings().weight.requires_grad_(False)  # tied with the LM head
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    waveforms, lengths = waveform_batch(audio)
    batch = {"waveforms": waveforms, "lengths": lengths, "texts": texts}
    scores = (1.0, 1.0)
    for step in range(1, max_steps + 1):
        model.train()
        loss = model(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if step % check_every == 0:
            model.eval()
            result = transcribe(model, audio, DecodeOptions(method="llm", max_new_tokens=32))
            scores = (cer([r.ctc.text for r in result], texts), cer([r.text for r in result], texts))
            if max(scores) < 0.02:
                break
    return scores


@pytest.mark.slow
def test_tiny_model_overfits_english_tts_through_ctc_and_llm(speech_clips):
    torch.manual_seed(0)
    clips = speech_clips[:4]
    model = tiny_model(texts=[t for t, _ in clips])
    ctc_cer, llm_cer = overfit(model, clips)
    assert ctc_cer < 0.02 and llm_cer < 0.02

    # the CTC hypothesis now carries the words, so hotword retrieval puts the planted term in the prompt
    index = HotwordIndex(["quarterly budget", "Grafana Loki", "whole team", "Berlin Wall"],
                         tokenizer_word_pieces(model.tokenizer))
    result = transcribe(model, [a for _, a in clips], DecodeOptions(method="llm", hotwords=index))
    assert "quarterly budget" in result[0].hotwords and "whole team" in result[1].hotwords
    assert "Grafana Loki" not in sum((r.hotwords for r in result), [])


@pytest.mark.slow
def test_tiny_model_overfits_mandarin_and_mixed_tts(speech_clips):
    espeak = pytest.importorskip("funfactory.synth.tts.espeak_voice")
    voice = espeak.EspeakVoice("cmn", "cmn", ("zh",))
    texts = ["我们明天下午三点开会", "请把部署文档发给团队", "模型从本地磁盘读取数据"]
    clips = []
    for i, text in enumerate(texts):
        audio = soxr.resample(voice.synthesize(text, seed=i), voice.sample_rate, 16000)
        clips.append((text, np.asarray(audio, dtype=np.float32)))
    clips.append(speech_clips[0])
    torch.manual_seed(0)
    model = tiny_model(texts=[t for t, _ in clips])
    ctc_cer, llm_cer = overfit(model, clips)
    assert ctc_cer < 0.02 and llm_cer < 0.02
