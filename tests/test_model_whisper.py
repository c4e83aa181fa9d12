"""The pretrained Whisper encoder behind the model's encoder interface, and the CTC hypothesis in
the LLM prompt (report sections 2 and 4.1)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from funfactory.model.asr import FunASRModel, set_trainable
from funfactory.model.configs import WhisperEncoderConfig, model_config
from funfactory.model.ctc import CTCVocab, ctc_greedy, perturb_hypothesis
from funfactory.model.decode import DecodeOptions, transcribe
from funfactory.model.whisper import WhisperEncoder, WhisperFrontend, load_whisper_encoder
from tests.conftest_model import _tiny_llm, tiny_llm_dir, tiny_model


def _padded_mel(audio: np.ndarray) -> torch.Tensor:
    """Whisper's own input: the clip padded with silence to 30 s, 3000 log-mel frames."""
    window = torch.zeros(1, 480000)
    window[0, : len(audio)] = torch.from_numpy(audio)
    return WhisperFrontend(WhisperEncoderConfig()).log_mel(window)[:, :3000]


def test_log_mel_matches_the_transformers_feature_extractor(speech_clips):
    from transformers import WhisperFeatureExtractor

    audio = speech_clips[0][1]
    reference = WhisperFeatureExtractor(feature_size=80)(
        audio, sampling_rate=16000, return_tensors="np").input_features[0].T
    assert np.abs(_padded_mel(audio)[0].numpy() - reference).max() < 1e-4


def test_converted_encoder_matches_ctranslate2_on_a_real_clip(speech_clips):
    import ctranslate2

    from funfactory.asr.whisper import whisper_base_dir

    torch.set_num_threads(2)
    encoder = WhisperEncoder(WhisperEncoderConfig()).eval()
    load_whisper_encoder(encoder, "whisper-base")
    mel = _padded_mel(speech_clips[1][1])
    whisper = ctranslate2.models.Whisper(str(whisper_base_dir()), device="cpu", intra_threads=2)
    expected = np.array(whisper.encode(ctranslate2.StorageView.from_array(
        np.ascontiguousarray(mel.transpose(1, 2).numpy()))))
    with torch.no_grad():
        ours, lengths = encoder(mel, torch.tensor([3000]))
    assert ours.shape == expected.shape == (1, 1500, 512) and int(lengths[0]) == 1500
    assert np.abs(ours.numpy() - expected).max() < 2e-3
    # a random encoder of the same shape is nowhere near: the comparison can fail
    assert np.abs(WhisperEncoder(WhisperEncoderConfig())(mel, torch.tensor([3000]))[0]
                  .detach().numpy() - expected).max() > 1.0


def _whisper_model() -> FunASRModel:
    """The `cpu` size's encoder and heads around the session's tiny LLM (fast to build)."""
    torch.set_num_threads(2)
    config = model_config("cpu", llm_path=str(tiny_llm_dir()))
    llm, tokenizer = _tiny_llm()
    vocab = CTCVocab.build(tokenizer, ["hello"], max_size=257)
    model = FunASRModel(config, copy.deepcopy(llm), tokenizer, vocab)
    load_whisper_encoder(model.encoder, "whisper-base")
    return model.eval()


def test_frozen_encoder_output_is_memoised_without_changing_it(speech_clips):
    model = _whisper_model()
    set_trainable(model, ["ctc"])
    audio = [speech_clips[2][1], speech_clips[3][1][:20000]]
    batch = torch.zeros(2, len(audio[0]))
    batch[0], batch[1, :20000] = torch.from_numpy(audio[0]), torch.from_numpy(audio[1])
    lengths = torch.tensor([len(audio[0]), 20000])
    with torch.no_grad():
        feats, feat_lengths = model.frontend(batch, lengths)
        direct, direct_lengths = model.encoder(feats, feat_lengths)
        first = model.encode_audio(batch, lengths)
        again = model.encode_audio(batch.flip(0), lengths.flip(0))  # served from the memo
    assert torch.equal(first.encoded_lengths, direct_lengths)
    assert (first.encoded - direct[:, : first.encoded.shape[1]]).abs().max() < 0.05  # float16 memo
    assert torch.equal(again.encoded[0], first.encoded[1][: again.encoded.shape[1]])


def test_ctc_hypothesis_reaches_the_prompt(speech_clips):
    model = tiny_model(texts=[t for t, _ in speech_clips])
    model.config.ctc_hypothesis_in_prompt = True
    seen = []
    build = model.build_llm_inputs

    def spy(embeds, lengths, prompts=None, targets=None, padding_side="right"):
        seen.append(list(prompts))
        return build(embeds, lengths, prompts, targets, padding_side)

    model.build_llm_inputs = spy
    audio = [a for _, a in speech_clips[:2]]
    out = transcribe(model, audio, DecodeOptions(max_new_tokens=3))
    prompts = seen[-1]
    assert [p.ctc_hypothesis for p in prompts] == [t.ctc.text for t in out]
    before, _ = model.template.split(prompts[0])
    assert f"CTC hypothesis: {out[0].ctc.text}" in before
    # training: the loss's prompts carry the CTC head's best path too, perturbed when asked
    batch = torch.zeros(2, max(len(a) for a in audio))
    for i, a in enumerate(audio):
        batch[i, : len(a)] = torch.from_numpy(a)
    lengths = torch.tensor([len(a) for a in audio])
    model.eval()
    model({"waveforms": batch, "lengths": lengths, "texts": ["a", "b"]})
    enc = model.encode_audio(batch, lengths)
    best = [h.text for h in ctc_greedy(enc.ctc_log_probs, enc.encoded_lengths, model.ctc_vocab,
                                       model.encoder_frame_seconds)]
    assert [p.ctc_hypothesis for p in seen[-1]] == best


def test_perturbed_hypotheses_keep_most_characters():
    text = "the design review has been moved to thursday afternoon"
    assert perturb_hypothesis(text, 0.0, seed=1) == text
    noisy = perturb_hypothesis(text, 0.2, seed=1)
    assert noisy != text and noisy == perturb_hypothesis(text, 0.2, seed=1)
    import jiwer

    assert 0.02 < jiwer.cer(text, noisy) < 0.45


@pytest.mark.parametrize("size", ["cpu"])
def test_cpu_size_names_a_pretrained_encoder_and_a_packaged_llm(size):
    config = model_config(size)
    assert config.whisper is not None and config.whisper.source == "whisper-base"
    assert config.llm_path == "smollm2-135m-instruct" and config.ctc_hypothesis_in_prompt
