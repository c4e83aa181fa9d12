"""Shapes and masks for batches of mixed lengths: encoder, adaptor, CTC, LLM prompt splicing."""

import torch

from funfactory.model.adaptor import Adaptor
from funfactory.model.configs import model_config
from funfactory.model.ctc import CTCVocab, ctc_greedy
from funfactory.model.encoder import AudioEncoder
from funfactory.model.llm import IGNORE_INDEX, TRAIN_LENGTH_MULTIPLE, LLMInputs, Prompt, PromptTemplate
from funfactory.model.transformer import attention_mask
from tests.conftest_model import tiny_model


def _encoder_and_adaptor(chunk_frames=0, downsample=2):
    torch.manual_seed(0)
    config = model_config("tiny")
    config.encoder.chunk_frames = chunk_frames
    config.adaptor.downsample = downsample
    encoder = AudioEncoder(config.encoder, config.frontend.feature_dim).eval()
    adaptor = Adaptor(config.adaptor, config.encoder.d_model, 96, chunk_frames).eval()
    return encoder, adaptor


def test_padded_batch_gives_each_utterance_its_own_output():
    encoder, adaptor = _encoder_and_adaptor(downsample=2)
    lengths = torch.tensor([17, 5, 12])
    feats = torch.randn(3, 17, 560)
    with torch.no_grad():
        encoded, enc_lengths = encoder(feats, lengths)
        embeds, embed_lengths = adaptor(encoded, enc_lengths)
    assert encoded.shape == (3, 17, 128) and embeds.shape == (3, 9, 96)
    assert embed_lengths.tolist() == [9, 3, 6]
    for i, n in enumerate(lengths.tolist()):
        with torch.no_grad():
            alone, _ = encoder(feats[i : i + 1, :n], lengths[i : i + 1])
            alone_embeds, _ = adaptor(alone, lengths[i : i + 1])
        torch.testing.assert_close(encoded[i, :n], alone[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(embeds[i, : int(embed_lengths[i])], alone_embeds[0], atol=1e-5, rtol=1e-5)
        assert not encoded[i, n:].any() and not embeds[i, int(embed_lengths[i]):].any()
    # garbage in the padding must not leak into valid frames
    noisy = feats.clone()
    noisy[1, 5:] = 100.0
    with torch.no_grad():
        again, _ = encoder(noisy, lengths)
    torch.testing.assert_close(again[1, :5], encoded[1, :5], atol=1e-5, rtol=1e-5)


def test_chunk_causal_attention_hides_future_chunks_and_full_attention_does_not():
    lengths = torch.tensor([36])
    feats = torch.randn(1, 36, 560)
    changed = feats.clone()
    changed[0, 24:] += 1.0  # only the third chunk of 12 frames
    for chunk_frames, past_unchanged in ((12, True), (0, False)):
        encoder, _ = _encoder_and_adaptor(chunk_frames=chunk_frames)
        with torch.no_grad():
            a, _ = encoder(feats, lengths)
            b, _ = encoder(changed, lengths)
        assert torch.allclose(a[0, :24], b[0, :24], atol=1e-6) == past_unchanged
        assert not torch.allclose(a[0, 24:], b[0, 24:], atol=1e-3)


def test_attention_mask_combines_padding_and_chunks():
    mask = attention_mask(torch.tensor([5, 3]), 5, chunk_frames=2)[:, 0]
    assert mask.shape == (2, 5, 5)
    assert mask[0, 0].tolist() == [True, True, False, False, False]
    assert mask[0, 2].tolist() == [True, True, True, True, False]
    assert mask[1, 4].tolist() == [True, True, True, False, False]


def test_ctc_greedy_collapses_repeats_and_times_tokens():
    model = tiny_model()
    vocab: CTCVocab = model.ctc_vocab
    hello, world = vocab.encode("hello world")
    path = [0, hello, hello, 0, 0, world, 0, world]  # world, blank, world: two tokens
    log_probs = torch.full((1, len(path), len(vocab)), -30.0)
    for t, token in enumerate(path):
        log_probs[0, t, token] = 0.0
    hyp = ctc_greedy(log_probs, torch.tensor([len(path)]), vocab, frame_seconds=0.06)[0]
    assert hyp.ids == [hello, world, world]
    assert hyp.text == "hello world world"
    spans = [(round(t.start, 2), round(t.end, 2)) for t in hyp.tokens]
    assert spans == [(0.06, 0.18), (0.30, 0.36), (0.42, 0.48)]


def test_ctc_vocab_spells_unseen_text_in_bytes_and_round_trips():
    model = tiny_model(texts=["hello world", "我们明天开会"])
    vocab = model.ctc_vocab
    for text in ["hello world", "我们明天开会", "Kubernetes 集群 ünïcödé"]:
        assert vocab.decode(vocab.encode(text)) == text
    assert len(vocab.encode("hello world")) == 2  # frequent tokens stay whole
    assert len(vocab) == 257 + len(set(vocab.llm_ids) - set(vocab.llm_ids[:256]))


def test_llm_inputs_splice_audio_and_train_only_the_transcript():
    model = tiny_model()
    audio = torch.randn(2, 6, model.llm.config.hidden_size)
    audio_lengths = torch.tensor([6, 4])
    prompts = [Prompt(hotwords=["Kubernetes"], ctc_hypothesis="hello"), None]
    targets = ["hello world", "我们"]
    right = model.build_llm_inputs(audio, audio_lengths, prompts, targets)
    left = model.build_llm_inputs(audio, audio_lengths, prompts, targets, padding_side="left")
    embed = model.llm.get_input_embeddings()
    stop = model.tokenizer.convert_tokens_to_ids("<|im_end|>")
    for inputs in (right, left):
        for b in range(2):
            start, end = inputs.audio_spans[b]
            assert end - start == int(audio_lengths[b])
            torch.testing.assert_close(inputs.inputs_embeds[b, start:end], audio[b, : end - start])
            trained = inputs.labels[b][inputs.labels[b] != IGNORE_INDEX].tolist()
            assert trained == model.tokenizer.encode(targets[b], add_special_tokens=False) + [stop]
            # the trained tokens are the last ones of the row, and their embeddings are the inputs
            positions = (inputs.labels[b] != IGNORE_INDEX).nonzero().squeeze(1)
            torch.testing.assert_close(inputs.inputs_embeds[b, positions],
                                       embed(torch.tensor(trained)))
    assert right.attention_mask.sum(1).tolist() == left.attention_mask.sum(1).tolist()
    assert right.attention_mask[:, 0].all() and left.attention_mask[:, -1].all()
    # training rows are padded to a multiple of TRAIN_LENGTH_MULTIPLE, and only so far
    longest = int(right.attention_mask.sum(1).max())
    assert longest % TRAIN_LENGTH_MULTIPLE  # so this case pads
    assert right.inputs_embeds.shape[1] == -(-longest // TRAIN_LENGTH_MULTIPLE) * TRAIN_LENGTH_MULTIPLE
    cropped = LLMInputs(right.inputs_embeds[:, :longest], right.attention_mask[:, :longest],
                        right.labels[:, :longest], right.audio_spans)
    with torch.no_grad():  # the padding changes no loss
        torch.testing.assert_close(model._llm_loss(right), model._llm_loss(cropped))
    untrained = model.build_llm_inputs(audio, audio_lengths, prompts)  # generation: no padding
    assert untrained.inputs_embeds.shape[1] == int(untrained.attention_mask.sum(1).max())
    prompt_text = model.tokenizer.decode(right.labels.new_tensor(
        model.tokenizer.encode(model.template.split(prompts[0])[0], add_special_tokens=False)))
    assert "Hotwords: Kubernetes" in prompt_text and "CTC hypothesis: hello" in prompt_text


def test_an_empty_system_prompt_leaves_the_system_turn_out():
    prompt = Prompt(ctc_hypothesis="helo world")
    with_system = PromptTemplate(system="You transcribe.", instruction="Transcribe.")
    assert with_system.split(prompt)[0] == (
        "<|im_start|>system\nYou transcribe.<|im_end|>\n"
        "<|im_start|>user\nTranscribe.\nCTC hypothesis: helo world\n")
    without = PromptTemplate(system="", instruction="Transcribe.")
    assert without.split(prompt)[0] == "<|im_start|>user\nTranscribe.\nCTC hypothesis: helo world\n"
    assert without.split(prompt)[1] == with_system.split(prompt)[1]
