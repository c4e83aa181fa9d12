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
from funfactory.model.precision import autocast
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
        with autocast("auto", batch.device):  # the memo encodes at `auto` precision
            feats, feat_lengths = model.frontend(batch, lengths)
            direct, direct_lengths = model.encoder(feats, feat_lengths)
        first = model.encode_audio(batch, lengths)
        again = model.encode_audio(batch.flip(0), lengths.flip(0))  # served from the memo
    assert torch.equal(first.encoded_lengths, direct_lengths)
    assert (first.encoded - direct[:, : first.encoded.shape[1]]).abs().max() < 0.05  # float16 memo
    assert torch.equal(again.encoded[0], first.encoded[1][: again.encoded.shape[1]])
    # new weights (loaded in place, as load_state_dict does) are a new encoder: no stale memo
    with torch.no_grad():
        model.encoder.layers[0].fc1.weight.mul_(0.5)
        changed = model.encode_audio(batch, lengths)
        with autocast("auto", batch.device):
            feats, feat_lengths = model.frontend(batch, lengths)
            direct, _ = model.encoder(feats, feat_lengths)
    assert (changed.encoded - direct[:, : changed.encoded.shape[1]]).abs().max() < 0.05
    assert (changed.encoded - first.encoded).abs().max() > 0.5


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


def test_encoder_output_masks_only_in_training_and_within_each_utterance():
    from funfactory.model.configs import MaskingConfig
    from funfactory.model.masking import mask_encoder_output

    torch.manual_seed(0)
    encoded = torch.randn(2, 400, 64) + 5.0  # no zeros of its own
    lengths = torch.tensor([400, 150])
    config = MaskingConfig(time_masks_per_second=1.0, max_time_frames=8, channel_masks=2,
                           max_channels=16, frame_seconds=0.02)
    masked = mask_encoder_output(encoded, lengths, config)
    zero = masked == 0
    # 8 s and 3 s: up to 8 and 3 spans of at most 8 frames, 2 bands of at most 16 channels
    whole_frames = zero.all(dim=2).sum(dim=1)
    assert 0 < whole_frames[0] <= 8 * 8 and whole_frames[1] <= 3 * 8
    assert not zero[1, 150 + 8:].all(dim=1).any()  # no time span starts past the utterance
    assert zero.all(dim=1).sum(dim=1).le(2 * 16).all()
    assert torch.equal(masked[~zero], encoded[~zero])
    # the model masks while it trains and never while it decodes
    model = tiny_model()
    model.config.masking = config
    lengths = torch.tensor([60, 40])
    encoded = torch.randn(2, 60, model.config.encoder.d_model) + 5.0
    model.eval()
    first, second = model.heads(encoded, lengths), model.heads(encoded, lengths)
    assert torch.equal(first.ctc_log_probs, second.ctc_log_probs)
    model.train()
    assert not torch.equal(model.heads(encoded, lengths).ctc_log_probs, first.ctc_log_probs)


def test_plain_ctc_targets_are_lower_case_words_without_punctuation():
    model = tiny_model(texts=["hello world", "Hello, World!"])
    assert model.ctc_target("Hello, World! It's 5 o'clock.") == "Hello, World! It's 5 o'clock."
    model.config.ctc_text = "plain"
    assert model.ctc_target("Hello, World! It's 5 o'clock.") == "hello world it's 5 o'clock"
    assert model.ctc_target("我们明天开会，好吗？") == "我们明天开会好吗"
    assert model_config("cpu").ctc_text == "plain"


def test_a_recording_longer_than_whisper_window_is_encoded_window_by_window(speech_clips):
    """A 40 s recording no longer fails Whisper's 30 s limit: its windows are encoded apart and
    joined, each equal to encoding that stretch padded to a window; short clips are untouched."""
    from funfactory.model.whisper import encode_in_windows, window_samples

    model = _whisper_model()
    window = window_samples(model.config.whisper)
    assert window == 27 * 16000  # 30 s less the 3 s of silence the frontend appends
    speech = np.concatenate([a for _, a in speech_clips] * 8)
    long = torch.from_numpy(speech[: 40 * 16000].copy())[None]
    assert long.shape[1] == 40 * 16000, "the test needs 40 s of speech"

    def encode(w, n):
        return model.encoder(*model.frontend(w, n))

    with torch.no_grad():
        with pytest.raises(Exception, match="30 s window"):
            encode(long, torch.tensor([long.shape[1]]))
        out, lengths = encode_in_windows(encode, long, torch.tensor([long.shape[1]]), window)
        first, first_len = encode(long[:, :window], torch.tensor([window]))
        # the last stretch is padded with silence to a whole window (as Whisper's own input is)
        rest = torch.zeros(1, window)
        rest[0, : long.shape[1] - window] = long[0, window:]
        second, _ = encode(rest, torch.tensor([window]))
        n1, n2 = int(first_len[0]), (long.shape[1] - window) // 320
        assert int(lengths[0]) == n1 + n2 == 2000  # 40 s of 20 ms frames
        assert torch.allclose(out[0, :n1], first[0, :n1], atol=1e-5)
        assert torch.allclose(out[0, n1:n1 + n2], second[0, :n2], atol=1e-5)
        short = long[:, :5 * 16000]
        assert torch.equal(encode_in_windows(encode, short, torch.tensor([80000]), window)[0],
                           encode(short, torch.tensor([80000]))[0])
        # the model path (frozen encoder, memoised) decodes the whole recording
        set_trainable(model, ["ctc"])
        enc = model.encode_audio(long, torch.tensor([long.shape[1]]))
    assert int(enc.encoded_lengths[0]) == 2000 and enc.ctc_log_probs.shape[1] == 2000
