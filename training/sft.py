"""Staged SFT and contextual SFT of the LLM-ASR model (Fun-ASR sections 4.2, 4.3) as a trainer task.

`SFTTask(config)` builds the model a stage starts from - a previous stage's export
(`model.init_from`), or a fresh `FunASRModel` around a local LLM with its CTC vocabulary and
global CMVN estimated from the training shards, its encoder optionally taken from an AED / Best-RQ
checkpoint (section 4.1) - then freezes it for the stage (`funfactory.training.stages`).
The loss is the model's own (LLM cross-entropy on the transcript, CTC for stage 5); prompts carry
the shard's context, hotwords and previous text, which is what contextual SFT trains on.
Validation decodes held-out shards and scores them with `funfactory.eval.scoring`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from pathlib import Path

import torch

from funfactory.errors import FunfactoryError
from funfactory.shards.reader import ShardReader
from funfactory.training.config import TrainConfig
from funfactory.training.stages import apply_stage, get_stage

log = logging.getLogger(__name__)


def character_error_rate(references: dict[str, str] | list[str],
                         hypotheses: dict[str, str] | list[str]) -> float:
    """Character edits per reference character after the shared scoring normalisation, for
    every language (the scoring module's CER keeps Latin words whole, which on English text is
    WER; a character-level CTC head needs this figure)."""
    import jiwer

    from funfactory.eval.textnorm import normalize_for_scoring

    if isinstance(references, dict):
        hypotheses = [hypotheses[k] for k in references]
        references = list(references.values())
    refs = [normalize_for_scoring(r) for r in references]
    hyps = [normalize_for_scoring(h) for h in hypotheses]
    keep = [i for i, r in enumerate(refs) if r]
    return float(jiwer.cer([refs[i] for i in keep], [hyps[i] for i in keep])) if keep else 0.0


def training_shards(config: TrainConfig) -> list[str]:
    return [u for stream in config.data.streams for u in stream.shards]


def sample_texts_and_audio(shards: list[str], max_texts: int = 5000, max_audio: int = 200):
    """Labels (for the CTC vocabulary) and waveforms (for CMVN) from the head of the shards."""
    texts, audio = [], []
    reader = ShardReader(shards, decode=False)
    from funfactory.shards.audio import decode_flac

    for sample in reader:
        if sample.meta["text"]:
            texts.append(sample.meta["text"])
        if len(audio) < max_audio:
            audio.append(decode_flac(sample.flac)[0])
        if len(texts) >= max_texts and len(audio) >= max_audio:
            break
    if not audio:
        raise FunfactoryError(f"no readable samples in {shards}: cannot build a fresh model")
    return texts, audio


def build_asr_model(config: TrainConfig):
    """The FunASRModel a stage starts from (not yet frozen)."""
    from funfactory.model.asr import FunASRModel
    from funfactory.model.checkpoint import load_encoder_weights, load_model
    from funfactory.model.cmvn import compute_global_cmvn
    from funfactory.model.configs import model_config

    setup = config.model
    if setup.init_from:
        model = load_model(setup.init_from)
        log.info("model from %s", setup.init_from)
    else:
        size = model_config(setup.size)
        llm_path = setup.llm_path or size.llm_path
        if not llm_path:
            raise FunfactoryError(
                "a fresh model needs model.llm_path (a local causal-LM folder; build a tiny one "
                "with `python -m funfactory.model.tiny_llm DIR`) or model.init_from (a saved model)")
        texts, audio = sample_texts_and_audio(training_shards(config),
                                              max_audio=setup.cmvn_utterances)
        model = FunASRModel.build(size, llm_path, texts, ctc_vocab_size=setup.ctc_vocab_size,
                                  seed=config.run.seed)
        if size.whisper is None:  # Whisper's log-mel is normalised by design
            compute_global_cmvn(model.frontend, audio)
    if setup.encoder_init:
        copy_encoder(model, setup.encoder_init)
        names = load_encoder_weights(model, setup.encoder_init)
        log.info("encoder (%d tensors) from %s", len(names), setup.encoder_init)
    return model


def copy_encoder(model, folder: str | Path) -> None:
    """Take the pre-trained encoder's CMVN too: its features were normalised with it."""
    from safetensors.torch import load_file

    state = load_file(str(Path(folder) / "model.safetensors"))
    for name in ("mean", "inv_std"):
        key = f"frontend.cmvn.{name}"
        if key in state:
            getattr(model.frontend.cmvn, name).copy_(state[key])


class SFTTask:
    """One SFT stage (1-5) or contextual SFT on the LLM-ASR model."""

    def __init__(self, config: TrainConfig, model=None):
        self.config = config
        self.stage = get_stage(config.model.stage)
        self.model = model if model is not None else build_asr_model(config)
        self.summary = apply_stage(self.model, self.stage, config.model.lora_r,
                                   config.model.lora_alpha, config.model.lora_dropout)
        log.info("stage %s: %d trainable, %d frozen parameters", self.stage.name,
                 self.summary["trainable"], self.summary["frozen"])
        self._val: list | None = None

    def loss(self, model, batch: dict) -> dict[str, torch.Tensor]:
        return model({"waveforms": batch["waveforms"], "lengths": batch["lengths"],
                      "texts": batch["texts"], "prompts": batch["prompts"]})

    def validation_samples(self) -> list:
        if self._val is None:
            run = self.config.run
            self._val = []
            if run.val_shards:
                for sample in ShardReader(run.val_shards):
                    if len(self._val) >= run.val_max_utterances:
                        break
                    self._val.append(sample)
        return self._val

    def validate(self, model) -> dict[str, float]:
        from funfactory.eval.scoring import score
        from funfactory.model.decode import DecodeOptions, transcribe
        from funfactory.model.lora import lora_merged

        samples = self.validation_samples()
        if not samples:
            return {}
        method = "ctc" if self.stage.name == "ctc" else self.config.run.decode_method
        refs, hyps, ctc_hyps, languages = {}, {}, {}, set()
        size = self.config.run.val_batch_size
        options = DecodeOptions(method=method, candidates=self.config.run.val_candidates or None)
        # LoRA adapters decode merged into a copy of the LLM (a quarter faster); FSDP's shards stay
        merged = (lora_merged(model) if self.config.run.distributed != "fsdp"
                  else contextlib.nullcontext())
        with merged:
            for i in range(0, len(samples), size):
                chunk = samples[i:i + size]
                out = transcribe(model, [s.audio for s in chunk], options,
                                 prompts=[s.meta.get("prompt") for s in chunk])
                for sample, transcript in zip(chunk, out):
                    refs[sample.key], hyps[sample.key] = sample.meta["text"], transcript.text
                    ctc_hyps[sample.key] = transcript.ctc.text
                    languages.add(sample.meta["language"])
        language = languages.pop() if len(languages) == 1 else None
        results = {"val_cer": character_error_rate(refs, hyps),
                   "val_wer": score(refs, hyps, language=language, metric="wer").rate}
        if method != "ctc":  # the CTC head's own figures, from the same decoding pass
            results["val_ctc_cer"] = character_error_rate(refs, ctc_hyps)
            results["val_ctc_wer"] = score(refs, ctc_hyps, language=language, metric="wer").rate
        results["val_utterances"] = float(len(refs))
        return results

    def export(self, model, folder: Path) -> None:
        """The stage's model as a plain folder (LoRA merged into a copy) for the next stage."""
        from funfactory.model.asr import is_lora
        from funfactory.model.checkpoint import save_model

        save_model(copy.deepcopy(model) if is_lora(model) else model, folder)
