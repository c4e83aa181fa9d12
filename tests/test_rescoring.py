"""LLM candidates rescored by the CTC head: the likelihood against brute force over every
alignment, the choice, and decoding with candidates on a real (tiny) model."""

import dataclasses
import itertools
import math

import numpy as np
import pytest
import torch

from funfactory.model.ctc import BLANK
from funfactory.model.decode import DecodeOptions, transcribe, waveform_batch
from funfactory.model.llm import generate
from funfactory.model.rescoring import choose_by_ctc, ctc_log_likelihoods
from tests.conftest_model import tiny_model


def _collapse(path):
    out, previous = [], BLANK
    for token in path:
        if token != BLANK and token != previous:
            out.append(token)
        previous = token
    return tuple(out)


def test_ctc_likelihood_equals_the_sum_over_every_alignment():
    torch.manual_seed(0)
    frames, vocab = 6, 3
    log_probs = torch.log_softmax(torch.randn(2, frames, vocab, dtype=torch.float64) * 2, dim=-1)
    lengths = torch.tensor([6, 4])
    targets = [(), (1,), (2, 1), (1, 1), (1, 2, 1), (2, 2, 2, 2)]
    owners = [b for b in (0, 1) for _ in targets]
    got = ctc_log_likelihoods(log_probs, lengths, owners, [list(t) for t in targets] * 2)
    for k, (b, target) in enumerate(zip(owners, targets * 2)):
        n = int(lengths[b])
        probs = log_probs[b, :n].exp()
        total = sum(math.prod(float(probs[t, s]) for t, s in enumerate(path))
                    for path in itertools.product(range(vocab), repeat=n)
                    if _collapse(path) == target)
        if total == 0.0:
            assert got[k] == float("-inf"), (b, target)  # (2, 2, 2, 2) needs 7 frames
        else:
            assert math.exp(got[k]) == pytest.approx(total, rel=1e-9), (b, target)


def _peaky(model, text: str, frames: int = 40) -> torch.Tensor:
    """CTC log-probs that spell `text` with high confidence, a blank between tokens."""
    ids = model.ctc_vocab.encode(model.ctc_target(text))
    logits = torch.full((frames, len(model.ctc_vocab)), -8.0)
    logits[:, BLANK] = 0.0
    for k, token in enumerate(ids):
        logits[2 * k + 1, token] = 4.0
    return torch.log_softmax(logits, dim=-1).unsqueeze(0)


def test_the_ctc_head_chooses_the_candidate_it_heard_and_the_first_on_a_tie():
    model = tiny_model(texts=("hello world", "help the word"))
    log_probs, lengths = _peaky(model, "hello world"), torch.tensor([40])
    candidates = [["help the word", "hello world", "hello", "world hello"]]
    assert choose_by_ctc(model, log_probs, lengths, candidates) == ["hello world"]
    plain = dataclasses.replace(model.config, ctc_text="plain")
    model.config = plain  # the head hears plain text: case and punctuation cost nothing
    tie = [["Hello, world!", "hello world"]]
    assert choose_by_ctc(model, log_probs, lengths, tie) == ["Hello, world!"]


def test_decoding_with_candidates_is_deterministic_and_leaves_the_callers_random_state():
    model = tiny_model()
    audio = [np.random.default_rng(k).standard_normal(16000 + 4000 * k).astype(np.float32) * 0.1
             for k in range(2)]
    options = DecodeOptions(method="llm", max_new_tokens=6, candidates=4)
    torch.manual_seed(7)
    first = transcribe(model, audio, options)
    after = torch.rand(3)
    torch.manual_seed(7)
    again = transcribe(model, audio, options)
    assert [t.text for t in first] == [t.text for t in again]
    assert torch.equal(torch.rand(3), after)
    # brute force: the greedy text and the 3 samples of each utterance, each scored on its own
    greedy = transcribe(model, audio, dataclasses.replace(options, candidates=1))
    batch, lengths = waveform_batch(audio)
    with torch.no_grad():
        enc = model.encode_audio(batch, lengths)
    inputs = model.build_llm_inputs(enc.audio_embeds, enc.audio_lengths, [None, None],
                                    padding_side="left")
    tokens = lambda text: len(model.tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
    # each utterance's samples stop at 1.5 times its greedy and CTC length
    caps = [min(6, math.ceil(1.5 * min(tokens(t.text), tokens(t.ctc.text))) + 4) for t in greedy]
    samples = generate(model.llm, model.tokenizer, inputs, max_new_tokens=caps, do_sample=True,
                       temperature=options.candidate_temperature, seed=0, num_return_sequences=3)
    for b, (chosen, plain) in enumerate(zip(first, greedy)):
        texts = [plain.text] + samples[3 * b:3 * b + 3]
        scores = [ctc_log_likelihoods(enc.ctc_log_probs, enc.encoded_lengths, [b],
                                      [model.ctc_vocab.encode(model.ctc_target(t))])[0]
                  for t in texts]
        assert chosen.text == texts[int(np.argmax(scores))]


def _noise_batch(model, sizes: list[int]):
    """The encoding of random clips of `sizes` samples and their left-padded LLM inputs."""
    audio = [np.random.default_rng(k).standard_normal(n).astype(np.float32) * 0.1
             for k, n in enumerate(sizes)]
    batch, lengths = waveform_batch(audio)
    with torch.no_grad():
        enc = model.encode_audio(batch, lengths)
    return enc, model.build_llm_inputs(enc.audio_embeds, enc.audio_lengths, [None] * len(sizes),
                                       padding_side="left")


def _texts(model, rows: list[list[int]]) -> list[str]:
    """Token rows cut at the first stop token, decoded (what `generate` returns)."""
    from funfactory.model.llm import stop_token_ids

    stops = stop_token_ids(model.tokenizer)
    return [model.tokenizer.decode(row[: next((k for k, t in enumerate(row) if t in stops),
                                               len(row))], skip_special_tokens=True)
            for row in rows]


def test_samples_share_one_prefill_and_equal_transformers_own_expansion():
    """Samples from one shared prompt prefill equal transformers' own generation on the prompt
    rows repeated, drawing with the same sampler and seed."""
    from transformers import GenerationConfig, LogitsProcessorList

    from funfactory.model.llm import stop_token_ids
    from funfactory.model.sampling import SampledToken

    model = tiny_model()
    _, inputs = _noise_batch(model, [12000 + 5000 * k for k in range(3)])
    ours = generate(model.llm, model.tokenizer, inputs, max_new_tokens=5, do_sample=True,
                    temperature=1.5, seed=3, num_return_sequences=4)
    stops = stop_token_ids(model.tokenizer)
    config = GenerationConfig(max_new_tokens=5, do_sample=False, eos_token_id=stops,
                              pad_token_id=model.tokenizer.pad_token_id)
    sampler = SampledToken(1.5, 0, 1.0, torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model.llm.generate(inputs_embeds=inputs.inputs_embeds.repeat_interleave(4, dim=0),
                                 attention_mask=inputs.attention_mask.repeat_interleave(4, dim=0),
                                 generation_config=config,
                                 logits_processor=LogitsProcessorList([sampler]))
    theirs = _texts(model, out.tolist())
    assert len(ours) == 12 and len(set(ours)) > 1
    assert ours == theirs


def test_sampled_candidates_follow_the_seed_and_near_zero_temperature_is_greedy():
    model = tiny_model()
    _, inputs = _noise_batch(model, [12000, 20000])
    sample = lambda seed, t: generate(model.llm, model.tokenizer, inputs,  # noqa: E731
                                      max_new_tokens=6, do_sample=True, temperature=t, seed=seed,
                                      num_return_sequences=3)
    first = sample(3, 1.5)
    assert sample(3, 1.5) == first and len(set(first)) > 1
    assert sample(4, 1.5) != first
    greedy = generate(model.llm, model.tokenizer, inputs, max_new_tokens=6)
    assert sample(3, 1e-4) == [g for g in greedy for _ in range(3)]


def test_each_row_stops_at_its_own_token_budget():
    """Per-row budgets equal one run to the largest budget with each row cut at its own; the
    decoder's budgets follow each clip's duration."""
    from funfactory.model.decode import token_budgets
    from funfactory.model.llm import stop_token_ids

    model = tiny_model()
    enc, inputs = _noise_batch(model, [8000 + 16000 * k for k in range(3)])
    assert token_budgets(model, enc, DecodeOptions(max_new_tokens=100, max_tokens_per_second=4)) \
        == [min(100, math.ceil(4 * float(n) * model.encoder_frame_seconds) + 8)
            for n in enc.encoded_lengths]
    assert token_budgets(model, enc, DecodeOptions(max_new_tokens=9, max_tokens_per_second=None)) \
        == [9, 9, 9]
    budgets = [2, 7, 4]
    ours = generate(model.llm, model.tokenizer, inputs, max_new_tokens=budgets)
    with torch.no_grad():
        out = model.llm.generate(inputs_embeds=inputs.inputs_embeds,
                                 attention_mask=inputs.attention_mask, max_new_tokens=7,
                                 do_sample=False, eos_token_id=stop_token_ids(model.tokenizer),
                                 pad_token_id=model.tokenizer.pad_token_id)
    assert ours == _texts(model, [row[:budget] for row, budget in zip(out.tolist(), budgets)])
    assert len(model.tokenizer.encode(ours[0], add_special_tokens=False)) <= 2
    with pytest.raises(Exception, match="at least 1"):
        generate(model.llm, model.tokenizer, inputs, max_new_tokens=[0, 3, 3])
