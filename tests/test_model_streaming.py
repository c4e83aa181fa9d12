"""Streaming over 720 ms chunks: partial results per chunk, final result equal to offline decoding."""

import numpy as np
import pytest
import torch

from funfactory.errors import FunfactoryError
from funfactory.model.ctc import ctc_greedy
from funfactory.model.decode import DecodeOptions, transcribe
from funfactory.model.llm import generate
from funfactory.model.streaming import StreamingRecognizer
from tests.conftest_model import tiny_model


def stream(model, audio, options, piece=3000):
    recognizer = StreamingRecognizer(model, chunk_ms=720, options=options)
    partials = []
    for start in range(0, len(audio), piece):
        partials += recognizer.accept_waveform(audio[start : start + piece])
    return recognizer, partials, recognizer.finish()


@pytest.mark.parametrize("chunk_frames", [12, 0], ids=["chunk-causal-cache", "full-attention"])
def test_streaming_final_equals_offline_decode(speech_clips, chunk_frames):
    model = tiny_model(texts=[t for t, _ in speech_clips], chunk_frames=chunk_frames, downsample=2)
    audio = [a for _, a in speech_clips[:2]]
    for method in ("ctc", "llm"):
        options = DecodeOptions(method=method, max_new_tokens=8)
        offline = transcribe(model, audio, options)  # batched with a shorter utterance
        recognizer, partials, final = stream(model, audio[0], options)
        assert final.text == offline[0].text
        assert final.ctc.ids == offline[0].ctc.ids
        # one partial per complete 720 ms chunk of encoder frames
        assert len(partials) == recognizer.encoded.shape[0] // 12 or \
            len(partials) == (recognizer.encoded.shape[0] - 1) // 12
        assert all(p.audio_seconds <= len(audio[0]) / 16000 for p in partials)
    with torch.no_grad():
        enc = model.encode_audio(torch.from_numpy(audio[0])[None], torch.tensor([len(audio[0])]))
    torch.testing.assert_close(recognizer.encoded, enc.encoded[0], atol=1e-4, rtol=1e-4)


def test_chunk_causal_partials_are_prefixes_of_the_final_ctc_path(speech_clips):
    model = tiny_model(texts=[t for t, _ in speech_clips], chunk_frames=12)
    audio = speech_clips[0][1]
    recognizer, partials, final = stream(model, audio, DecodeOptions(method="ctc"), piece=1600)
    assert len(partials) >= 3
    # with a causal cache, earlier chunks never change: partial k is the final encoder output's
    # best path over the first k + 1 chunks
    for k, partial in enumerate(partials):
        frames = 12 * (k + 1)
        with torch.no_grad():
            prefix = ctc_greedy(model.ctc(recognizer.encoded[None, :frames]), torch.tensor([frames]),
                                model.ctc_vocab, model.encoder_frame_seconds)[0]
        assert partial.text == prefix.text
        assert partial.audio_seconds >= frames * 0.06
    assert final.ctc.ids == transcribe(model, [audio], DecodeOptions(method="ctc"))[0].ctc.ids


def test_llm_partials_decode_the_audio_so_far(speech_clips):
    model = tiny_model(texts=[t for t, _ in speech_clips], chunk_frames=12, downsample=2)
    audio = speech_clips[1][1]
    options = DecodeOptions(method="llm", max_new_tokens=4)
    recognizer = StreamingRecognizer(model, options=options, llm_partials=True)
    partials = recognizer.accept_waveform(audio[:16000 * 2])
    assert len(partials) == 2  # 2 s of audio hold two whole 720 ms chunks
    with torch.no_grad():
        first_chunks = recognizer.encoded[None, :24]
        embeds, lengths = model.adaptor(first_chunks, torch.tensor([24]))
        inputs = model.build_llm_inputs(embeds, lengths, padding_side="left")
    assert partials[1].text == generate(model.llm, model.tokenizer, inputs, max_new_tokens=4)[0]
    assert recognizer.finish().text == transcribe(model, [audio], options)[0].text


def test_stream_rejects_a_chunk_the_encoder_was_not_built_for():
    model = tiny_model(chunk_frames=12)
    with pytest.raises(FunfactoryError, match="chunks of 12 frames"):
        StreamingRecognizer(model, chunk_ms=600)
    with pytest.raises(FunfactoryError, match="less than one encoder frame"):
        StreamingRecognizer(model).finish()
    assert np.isclose(model.encoder_frame_seconds, 0.06)


def test_sampled_decoding_is_seeded_and_differs_from_greedy(speech_clips):
    model = tiny_model(texts=[t for t, _ in speech_clips])
    audio = [a for _, a in speech_clips[:2]]
    sampled = DecodeOptions(method="llm", max_new_tokens=6, do_sample=True, temperature=1.5, seed=3)
    first = [t.text for t in transcribe(model, audio, sampled)]
    again = [t.text for t in transcribe(model, audio, sampled)]
    greedy = [t.text for t in transcribe(model, audio, DecodeOptions(method="llm", max_new_tokens=6))]
    assert first == again
    assert first != greedy
