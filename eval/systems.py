"""Systems under evaluation behind one small interface (Fun-ASR report section 6).

A system turns a batch of 16 kHz clips (with their sample JSON, for prompts such as hotwords and
context) into texts. Three kinds:

- ``backend:KIND`` — a pseudo-label ASR backend (:mod:`funfactory.asr.registry`
  kinds: whisper-base, whisper-tiny-en, pocketsphinx, ...);
- ``model:FOLDER`` — our model from a :func:`funfactory.model.checkpoint.save_model` folder,
  decoded offline (:func:`funfactory.model.decode.transcribe`) with each sample's prompt;
- ``streaming:FOLDER[@CHUNK_MS]`` — the same model through
  :class:`funfactory.model.streaming.StreamingRecognizer`, fed chunk by chunk; the final text is
  scored (partials are what the streaming simulation looks at, not the final score).
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from funfactory.errors import FunfactoryError


class System(Protocol):
    name: str
    condition: str  # "offline" | "streaming"

    def transcribe(self, audios: Sequence[np.ndarray], metas: Sequence[dict]) -> list[str]:
        ...


class BackendSystem:
    condition = "offline"

    def __init__(self, kind: str, name: str | None = None):
        import os

        from funfactory.asr.registry import BackendSpec, build_backend

        self.backend = build_backend(BackendSpec(kind=kind, name=name or kind))
        # the only decoder in this process: every core it may use (Whisper base on 2 cores
        # decoded the demo's test set in 9 s against 15 s on one)
        self.backend.threads = len(os.sched_getaffinity(0))
        self.name = self.backend.name

    def transcribe(self, audios, metas):
        languages = [m.get("language") or None for m in metas]
        return [t.text for t in self.backend.transcribe_batch(list(audios), languages)]


class ModelSystem:
    def __init__(self, folder: str, streaming_chunk_ms: float | None = None, method: str = "llm"):
        from funfactory.model.checkpoint import load_model
        from funfactory.model.decode import DecodeOptions

        self.model = load_model(folder)
        self.options = DecodeOptions(method=method)
        self.chunk_ms = streaming_chunk_ms
        self.condition = "streaming" if streaming_chunk_ms else "offline"
        self.name = f"{folder.rstrip('/').rsplit('/', 1)[-1]}-{method}"

    def transcribe(self, audios, metas):
        from funfactory.model.decode import transcribe
        from funfactory.model.streaming import StreamingRecognizer

        prompts = [m.get("prompt") for m in metas]
        if not self.chunk_ms:
            return [t.text for t in transcribe(self.model, list(audios), self.options, prompts)]
        texts = []
        step = int(self.chunk_ms * 16)  # samples per chunk at 16 kHz
        for audio, prompt in zip(audios, prompts):
            recognizer = StreamingRecognizer(self.model, self.chunk_ms, self.options, prompt)
            for start in range(0, len(audio), step):
                recognizer.accept_waveform(audio[start:start + step])
            texts.append(recognizer.finish().text)
        return texts


def build_system(spec: str) -> System:
    """A system from its command-line spec (module docstring)."""
    kind, _, value = spec.partition(":")
    if kind == "backend" and value:
        return BackendSystem(value)
    if kind == "model" and value:
        return ModelSystem(value)
    if kind == "streaming" and value:
        folder, _, chunk = value.partition("@")
        return ModelSystem(folder, streaming_chunk_ms=float(chunk or 720.0))
    raise FunfactoryError(f"system {spec!r}: write backend:KIND, model:FOLDER or "
                          "streaming:FOLDER[@CHUNK_MS]")
