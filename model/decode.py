"""Offline batched decoding: CTC greedy, and LLM greedy or sampled with hotword prompts (sections 2, 5.5).

`transcribe(model, waveforms)` pads a batch of 16 kHz float32 waveforms, encodes them once, takes
the CTC best path (with token timestamps), retrieves hotword candidates from that hypothesis when a
`HotwordIndex` is given, builds each utterance's prompt and generates with the LLM. With
`candidates` > 1 (`DecodeOptions.candidates`, else the model config's `decode_candidates`) the
LLM's greedy transcript and `candidates - 1` samples are rescored by the CTC head
(`rescoring.py`).
`decode_encoding` is the part after the encoder, shared with streaming so that a stream's final
result goes through exactly the offline path.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from funfactory.errors import FunfactoryError
from funfactory.model.asr import AudioEncoding, FunASRModel
from funfactory.model.ctc import CTCHypothesis, ctc_greedy
from funfactory.model.hotword import HotwordIndex
from funfactory.model.llm import Prompt, generate
from funfactory.model.precision import autocast
from funfactory.model.rescoring import choose_by_ctc

METHODS = ("ctc", "llm")


@dataclass
class DecodeOptions:
    method: str = "llm"  # "ctc": CTC best path only; "llm": the LLM decoder
    hotwords: HotwordIndex | None = None
    hotword_top_k: int = 10
    ctc_hypothesis_in_prompt: bool = False
    max_new_tokens: int = 256  # a 35 s read sentence runs to about 130 tokens
    # and at most this many per second of audio (plus 8): speech carries about 3 to 5 tokens a
    # second, so the bound cuts only a decoder that runs on. None: no bound but max_new_tokens.
    max_tokens_per_second: float | None = 10.0
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    # LLM transcripts per utterance, rescored by the CTC head (rescoring.py); None: the model
    # config's `decode_candidates`. Greedy decoding only: sampling returns one sample.
    candidates: int | None = None
    candidate_temperature: float = 0.8
    precision: str = "auto"  # autocast while decoding (model/precision.py): bf16 where native


@dataclass
class Transcript:
    text: str
    ctc: CTCHypothesis
    hotwords: list[str] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)  # the LLM's transcripts, greedy first


def waveform_batch(waveforms: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D float waveforms into (B, N) with their lengths."""
    if not waveforms:
        raise FunfactoryError("no waveforms to decode")
    arrays = [np.asarray(w, dtype=np.float32).reshape(-1) for w in waveforms]
    lengths = torch.tensor([len(a) for a in arrays])
    batch = torch.zeros(len(arrays), int(lengths.max()))
    for i, a in enumerate(arrays):
        batch[i, : len(a)] = torch.from_numpy(a)
    return batch, lengths


def decode_encoding(model: FunASRModel, enc: AudioEncoding, options: DecodeOptions,
                    prompts: Sequence[dict | Prompt | None] | None = None) -> list[Transcript]:
    if options.method not in METHODS:
        raise FunfactoryError(f"decode method {options.method!r} is unknown; choose one of {METHODS}")
    hyps = ctc_greedy(enc.ctc_log_probs, enc.encoded_lengths, model.ctc_vocab,
                      model.encoder_frame_seconds)
    if options.method == "ctc":
        return [Transcript(h.text, h) for h in hyps]
    built: list[Prompt] = []
    for i, hyp in enumerate(hyps):
        given = prompts[i] if prompts is not None else None
        prompt = (dataclasses.replace(given, hotwords=list(given.hotwords), context=list(given.context))
                  if isinstance(given, Prompt) else Prompt.from_sample(given))
        if options.hotwords is not None:
            found = [m.hotword for m in options.hotwords.retrieve(hyp.text, options.hotword_top_k)]
            prompt.hotwords = list(dict.fromkeys(prompt.hotwords + found))
        if options.ctc_hypothesis_in_prompt or model.config.ctc_hypothesis_in_prompt:
            prompt.ctc_hypothesis = hyp.text
        built.append(prompt)
    inputs = model.build_llm_inputs(enc.audio_embeds, enc.audio_lengths, built, padding_side="left")
    budgets = token_budgets(model, enc, options)
    texts = generate(model.llm, model.tokenizer, inputs, max_new_tokens=budgets,
                     do_sample=options.do_sample, temperature=options.temperature,
                     top_p=options.top_p, top_k=options.top_k, seed=options.seed)
    n = options.candidates if options.candidates is not None else model.config.decode_candidates
    if n > 1 and not options.do_sample:
        # A sample half again as long as both the greedy transcript and the CTC hypothesis
        # corrects neither (the bound also stops samples where greedy decoding ran away).
        shortest = [min(len(model.tokenizer.encode(t, add_special_tokens=False)),
                        len(model.tokenizer.encode(h.text, add_special_tokens=False)))
                    for t, h in zip(texts, hyps)]
        sampled = generate(model.llm, model.tokenizer, inputs,
                           max_new_tokens=[min(b, math.ceil(1.5 * k) + 4)
                                           for b, k in zip(budgets, shortest)],
                           do_sample=True, temperature=options.candidate_temperature,
                           seed=options.seed or 0, num_return_sequences=n - 1)
        candidates = [[t] + sampled[i * (n - 1):(i + 1) * (n - 1)] for i, t in enumerate(texts)]
        chosen = choose_by_ctc(model, enc.ctc_log_probs, enc.encoded_lengths, candidates)
        return [Transcript(t, h, p.hotwords, c)
                for t, h, p, c in zip(chosen, hyps, built, candidates)]
    return [Transcript(t, h, p.hotwords, [t]) for t, h, p in zip(texts, hyps, built)]


def token_budgets(model: FunASRModel, enc: AudioEncoding, options: DecodeOptions) -> list[int]:
    """Each utterance's most new tokens: `max_new_tokens`, and at most `max_tokens_per_second`
    per second of its audio plus 8."""
    if options.max_tokens_per_second is None:
        return [options.max_new_tokens] * len(enc.encoded_lengths)
    seconds = enc.encoded_lengths.double().cpu() * model.encoder_frame_seconds
    return [min(options.max_new_tokens, math.ceil(options.max_tokens_per_second * s) + 8)
            for s in seconds.tolist()]


def transcribe(model: FunASRModel, waveforms: Sequence[np.ndarray], options: DecodeOptions | None = None,
               prompts: Sequence[dict | Prompt | None] | None = None,
               sample_rate: int = 16000) -> list[Transcript]:
    """Decode a batch of utterances offline."""
    if sample_rate != model.config.frontend.sample_rate:
        raise FunfactoryError(
            f"audio at {sample_rate} Hz; the model expects {model.config.frontend.sample_rate} Hz: "
            "resample first")
    batch, lengths = waveform_batch(waveforms)
    device = next(model.parameters()).device
    options = options or DecodeOptions()
    with torch.no_grad(), autocast(options.precision, device):
        batch, lengths = batch.to(device), lengths.to(device)
        enc = model.encode_audio(batch, lengths)
        return decode_encoding(model, enc, options, prompts)
