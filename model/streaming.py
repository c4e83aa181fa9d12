"""Streaming recognition over fixed chunks (default 720 ms), Fun-ASR report section 5.1.

Audio arrives in pieces of any size. Fbank frames are computed once each, as soon as their 400
samples exist; a stacked (LFR) frame is encoded once all the fbank frames it stacks exist. Every
time a whole chunk of encoder frames is ready it is encoded and a partial result (CTC greedy by
default) is emitted. A chunk-causal encoder (`encoder.chunk_frames` equal to the chunk) encodes
each chunk once against a key/value cache of the past; a full-attention encoder re-encodes the
prefix instead. With `llm_partials=True` each partial is decoded by the LLM over the audio so far
(the report's streaming mode; costs one LLM decode per chunk). `finish()` flushes the tail exactly as the offline frontend pads it and decodes
through `decode.decode_encoding`, so the final result equals offline decoding of the whole utterance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from funfactory.errors import FunfactoryError
from funfactory.model.asr import AudioEncoding, FunASRModel
from funfactory.model.ctc import ctc_greedy
from funfactory.model.decode import DecodeOptions, Transcript, decode_encoding
from funfactory.model.frontend import lfr_stack, num_fbank_frames


@dataclass
class PartialResult:
    text: str
    audio_seconds: float  # audio consumed when this partial was made
    is_final: bool = False


class StreamingRecognizer:
    def __init__(self, model: FunASRModel, chunk_ms: float = 720.0,
                 options: DecodeOptions | None = None, prompt: dict | None = None,
                 llm_partials: bool = False):
        if model.config.whisper is not None:
            raise FunfactoryError(
                "streaming decodes models with the fbank encoder; this model has a Whisper "
                "encoder (sizes such as `cpu`), which decodes whole utterances: use "
                "funfactory.model.decode.transcribe")
        frame_ms = model.encoder_frame_seconds * 1000.0
        if abs(chunk_ms / frame_ms - round(chunk_ms / frame_ms)) > 1e-6:
            raise FunfactoryError(
                f"chunk of {chunk_ms} ms is not a whole number of {frame_ms:.0f} ms encoder frames")
        self.chunk_frames = int(round(chunk_ms / frame_ms))
        encoder_chunk = model.config.encoder.chunk_frames
        if encoder_chunk and encoder_chunk != self.chunk_frames:
            raise FunfactoryError(
                f"the encoder was built for chunks of {encoder_chunk} frames "
                f"({encoder_chunk * frame_ms:.0f} ms) but streaming asked for {chunk_ms} ms: use "
                "the encoder's chunk size")
        self.model = model
        self.options = options or DecodeOptions()
        self.prompt = prompt
        self.llm_partials = llm_partials and self.options.method == "llm"
        self.cached = encoder_chunk > 0
        self.reset()

    def reset(self) -> None:
        self.samples = np.zeros(0, dtype=np.float32)
        self.device = next(self.model.parameters()).device
        self.fbank = torch.zeros(0, self.model.config.frontend.num_mel_bins, device=self.device)
        self.encoded = torch.zeros(0, self.model.config.encoder.d_model, device=self.device)
        self.cache = None

    @property
    def _frontend(self):
        return self.model.frontend

    def _extend_fbank(self) -> None:
        fe = self._frontend
        total = int(num_fbank_frames(torch.tensor(len(self.samples)), fe.frame_length, fe.frame_shift))
        done = self.fbank.shape[0]
        if total <= done:
            return
        start = done * fe.frame_shift
        stop = (total - 1) * fe.frame_shift + fe.frame_length
        piece = torch.from_numpy(self.samples[start:stop]).reshape(1, -1).to(self.device)
        feats, _ = fe.fbank(piece, torch.tensor([piece.shape[1]]))
        self.fbank = torch.cat([self.fbank, fe.cmvn(feats[0])])

    def _lfr(self, final: bool) -> torch.Tensor:
        c = self.model.config.frontend
        stacked, lengths = lfr_stack(self.fbank[None], torch.tensor([self.fbank.shape[0]]),
                                     c.lfr_m, c.lfr_n, final=final)
        return stacked[0, : int(lengths[0])]

    def _encode_until(self, lfr: torch.Tensor, stop: int) -> None:
        """Encode LFR frames up to `stop` (a chunk boundary, or the end at finish)."""
        encoder = self.model.encoder
        if not self.cached:
            encoded, _ = encoder(lfr[None, :stop], torch.tensor([stop]))
            self.encoded = encoded[0]
            return
        while self.encoded.shape[0] < stop:
            start = self.encoded.shape[0]
            end = min(start + self.chunk_frames, stop)
            out, self.cache = encoder.forward_chunk(lfr[None, start:end], start, self.cache)
            self.encoded = torch.cat([self.encoded, out[0]])

    def _ctc_text(self) -> str:
        log_probs = self.model.ctc(self.encoded[None], torch.tensor([self.encoded.shape[0]]))
        hyp = ctc_greedy(log_probs, torch.tensor([self.encoded.shape[0]]), self.model.ctc_vocab,
                         self.model.encoder_frame_seconds)
        return hyp[0].text

    def accept_waveform(self, samples: np.ndarray) -> list[PartialResult]:
        """Add audio; return one partial result per chunk completed by it."""
        self.samples = np.concatenate([self.samples, np.asarray(samples, dtype=np.float32).reshape(-1)])
        partials = []
        with torch.no_grad():
            self._extend_fbank()
            lfr = self._lfr(final=False)
            ready = (lfr.shape[0] // self.chunk_frames) * self.chunk_frames
            while self.encoded.shape[0] < ready:
                self._encode_until(lfr, self.encoded.shape[0] + self.chunk_frames)
                text = self._decode_encoded().text if self.llm_partials else self._ctc_text()
                partials.append(PartialResult(text,
                                              len(self.samples) / self.model.config.frontend.sample_rate))
        return partials

    def finish(self) -> Transcript:
        """Flush the tail and decode the whole utterance as offline decoding would."""
        with torch.no_grad():
            self._extend_fbank()
            lfr = self._lfr(final=True)
            if lfr.shape[0] == 0:
                raise FunfactoryError(
                    "the stream holds less than one encoder frame of audio (about 60 ms): "
                    "nothing to decode")
            self._encode_until(lfr, lfr.shape[0])
            return self._decode_encoded()

    def _decode_encoded(self) -> Transcript:
        """Adaptor, CTC and the configured decoder over everything encoded so far."""
        encoded = self.encoded[None]
        lengths = torch.tensor([encoded.shape[1]])
        embeds, embed_lengths = self.model.adaptor(encoded, lengths)
        enc = AudioEncoding(encoded, lengths, self.model.ctc(encoded, lengths), embeds, embed_lengths)
        return decode_encoding(self.model, enc, self.options, [self.prompt])[0]
