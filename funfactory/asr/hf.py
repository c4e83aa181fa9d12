"""Any local Hugging Face ASR checkpoint through ``transformers.pipeline("automatic-speech-
recognition")`` (Whisper, wav2vec2 CTC, ...): the hook for a site's own fine-tuned systems.

The folder must hold the model, its config and its processor files (``save_pretrained`` of a
model and its processor); a local folder path is read from disk, nothing is downloaded. Clips
are passed as one list with ``batch_size``, so the pipeline pads and runs them batched.
"""

from __future__ import annotations

from pathlib import Path

from funfactory.errors import MissingAssetError
from funfactory.asr.base import AsrBackend, Transcript, cpu_threads
from funfactory.model.hf_lock import HF_LOCK


class TransformersBackend(AsrBackend):
    def __init__(self, model_dir: str | Path, name: str | None = None,
                 languages: tuple[str, ...] | None = None, batch_size: int = 8,
                 generate_kwargs: dict | None = None):
        super().__init__()
        self.model_dir = Path(model_dir)
        self.name = name or f"hf-{self.model_dir.name}"
        self.languages = languages
        self.batch_size = batch_size
        self.generate_kwargs = dict(generate_kwargs or {})
        self.pipe = None

    def _load(self) -> None:
        if not (self.model_dir / "config.json").is_file():
            raise MissingAssetError(f"{self.model_dir} is not a Hugging Face checkpoint folder "
                                    "(no config.json): save one with save_pretrained")
        import torch
        from transformers import pipeline
        torch.set_num_threads(cpu_threads(self.threads or 1))
        with HF_LOCK:
            self.pipe = pipeline("automatic-speech-recognition", model=str(self.model_dir),
                                 device=-1)
        self._is_whisper = "whisper" in type(self.pipe.model).__name__.lower()

    def _transcribe(self, audios, languages, word_timestamps):
        inputs = [{"raw": audio, "sampling_rate": 16000} for audio in audios]
        kwargs = {"batch_size": self.batch_size}
        if self._is_whisper:
            hint = {lang for lang in languages}
            generate = dict(self.generate_kwargs)
            if len(hint) == 1 and None not in hint and self.pipe.model.config.to_dict().get(
                    "lang_to_id"):
                generate.setdefault("language", next(iter(hint)).split("-")[0])
            kwargs["generate_kwargs"] = generate
        results = self.pipe(inputs, **kwargs)
        return [Transcript(text=str(r.get("text", "")).strip(), language=lang)
                for r, lang in zip(results, languages)]
