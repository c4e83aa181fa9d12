"""Backends by name, from config: ``BackendSpec(kind=..., ...)`` -> a ready (unloaded) backend.

Kinds:

- ``whisper-tiny-en``: faster-whisper, Whisper tiny.en (English);
- ``whisper-base``: faster-whisper, Whisper base (multilingual, incl. zh);
- ``faster-whisper``: any CTranslate2 Whisper folder in ``model``;
- ``pocketsphinx``: CMU pocketsphinx en-us;
- ``transformers``: a local Hugging Face ASR checkpoint folder in ``model``;
- ``command``: a program (``command`` is its argv list) printing JSON lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from funfactory.errors import FunfactoryError
from funfactory.asr.base import AsrBackend

KINDS = ("whisper-tiny-en", "whisper-base", "faster-whisper", "pocketsphinx", "transformers",
         "command")


@dataclass
class BackendSpec:
    kind: str = "whisper-tiny-en"
    name: str = ""  # the key in a sample's labels; default: the kind
    model: str = ""  # a model folder (faster-whisper, transformers)
    command: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)  # empty: the backend's own list

    @property
    def label_name(self) -> str:
        return self.name or self.kind


def build_backend(spec: BackendSpec) -> AsrBackend:
    from funfactory.asr import command, hf, sphinx, whisper
    languages = tuple(spec.languages) or None
    name = spec.label_name
    if spec.kind == "whisper-tiny-en":
        backend = whisper.whisper_tiny_en(name=name)
    elif spec.kind == "whisper-base":
        backend = whisper.whisper_base(name=name)
    elif spec.kind == "faster-whisper":
        if not spec.model:
            raise FunfactoryError(
                "ASR backend kind faster-whisper needs model: <CTranslate2 folder>")
        backend = whisper.FasterWhisperBackend(spec.model, name=name, languages=languages)
    elif spec.kind == "pocketsphinx":
        backend = sphinx.PocketsphinxBackend(name=name)
    elif spec.kind == "transformers":
        if not spec.model:
            raise FunfactoryError("ASR backend kind transformers needs model: <checkpoint folder>")
        backend = hf.TransformersBackend(spec.model, name=name, languages=languages)
    elif spec.kind == "command":
        backend = command.CommandBackend(spec.command, name=name, languages=languages)
    else:
        raise FunfactoryError(f"unknown ASR backend kind {spec.kind!r}: use one of {KINDS}")
    if languages and spec.kind in ("whisper-tiny-en", "whisper-base", "pocketsphinx"):
        backend.languages = languages
    return backend


def default_specs() -> list[BackendSpec]:
    """The three systems that run offline here."""
    return [BackendSpec(kind="whisper-base"), BackendSpec(kind="whisper-tiny-en"),
            BackendSpec(kind="pocketsphinx")]
