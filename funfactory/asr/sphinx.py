"""CMU pocketsphinx 5 with the en-us acoustic model, dictionary and language model in its wheel.

A classic HMM/GMM recogniser: weaker than Whisper (measured here: WER about 0.28 on clean read
English) but with errors of a different kind, which is what agreement voting needs (Fun-ASR
report section 3.1). Word timestamps come from the decoder's segmentation (100 frames/s).

Each clip is decoded from the same initial cepstral mean: pocketsphinx's live CMN otherwise carries
its estimate from one utterance to the next, so a segment's hypothesis depended on which segments
were decoded before it in the batch. The transcript's extras give the decoder's own confidence:
``log_posterior`` (natural log of the hypothesis' lattice posterior) and ``score`` (its normalised
path score).
"""

from __future__ import annotations

import threading
import math

import numpy as np

from funfactory.errors import MissingAssetError
from funfactory.asr.base import AsrBackend, Transcript, Word

FRAMES_PER_SECOND = 100
_FILLERS = frozenset({"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]", "[BREATH]", "[COUGH]",
                      "[UH]", "[UM]", "[SMACK]"})


class PocketsphinxBackend(AsrBackend):
    """English only; one decoder per worker process, shared by its threads: the decoder is
    stateful (start_utt ... end_utt), so clips are decoded one after another under a lock."""

    languages = ("en",)
    supports_word_timestamps = True

    def __init__(self, name: str = "pocketsphinx"):
        super().__init__()
        self.name = name
        self.decoder = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as e:
            raise MissingAssetError("the pocketsphinx backend needs pocketsphinx==5.1.1") from e
        self.decoder = Decoder(samprate=16000, loglevel="FATAL")
        self.initial_cmn = self.decoder.get_cmn()

    def _decode(self, audio: np.ndarray, word_timestamps: bool) -> Transcript:
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        self.decoder.start_stream()  # no stream state carried over from the previous clip
        self.decoder.set_cmn(self.initial_cmn)
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        text = hyp.hypstr if hyp is not None else ""
        extras = {"log_posterior": math.log(max(hyp.prob, 1e-300)) if hyp is not None else -690.8,
                  "score": float(hyp.score) if hyp is not None else 0.0}
        words = None
        if word_timestamps:
            words = tuple(Word(s.word.split("(")[0], s.start_frame / FRAMES_PER_SECOND,
                               (s.end_frame + 1) / FRAMES_PER_SECOND)
                          for s in self.decoder.seg() if s.word not in _FILLERS)
        return Transcript(text=text, language="en", words=words, extras=extras)

    def _transcribe(self, audios, languages, word_timestamps):
        with self._lock:
            return [self._decode(audio, word_timestamps) for audio in audios]
