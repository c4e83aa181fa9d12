"""The composed Fun-ASR model (report section 2): frontend -> encoder -> {CTC head, adaptor -> LLM}.

Public surface for training and rollouts:

- `FunASRModel.build(config, llm_path, ctc_texts)` makes a fresh model around a local LLM folder;
  `funfactory.model.checkpoint.load_model(folder)` reloads a saved one.
- `model(batch)` -> {"loss", "ctc_loss", "llm_loss"}: batch holds "waveforms" (B, N) float32 at
  16 kHz, "lengths" (B,), "texts" (list of labels) and optionally "prompts" (shard `prompt` dicts
  or `Prompt`s). `config.ctc_weight` / `config.llm_weight` weigh the two losses; a zero weight
  skips that branch (stage 5 of section 4.2 trains the CTC head alone).
- `model.encode_audio(waveforms, lengths)` -> `AudioEncoding` (encoder output, CTC
  log-probabilities, adaptor embeddings in the LLM's width); a frozen Whisper encoder's output is
  memoised per utterance (`funfactory.model.encoding_cache`), so training epochs pay for it once;
  with `config.ctc_hypothesis_in_prompt` the CTC best path goes into the LLM prompt; and `model.build_llm_inputs(...)`
  splices those embeddings into prompts as `inputs_embeds` (what a vLLM rollout with
  `enable_prompt_embeds` or `llm.generate` takes).
- `set_trainable(model, ["adaptor", ...])` freezes every other part (stages 1-5 of section 4.2);
  `add_llm_lora(model, ...)` wraps the LLM with peft LoRA, after which "llm" means its LoRA weights.
- `count_parameters(model)` -> {"encoder": ..., "adaptor": ..., "ctc": ..., "llm": ..., "total": ...};
  `meta_model(config)` builds any size on the meta device to count it without allocating.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from funfactory.errors import FunfactoryError
from funfactory.eval.textnorm import plain_text
from funfactory.model.adaptor import Adaptor
from funfactory.model.configs import LLMShape, ModelConfig
from funfactory.model.ctc import CTCHead, CTCVocab, ctc_greedy, ctc_loss, perturb_hypothesis
from funfactory.model.encoder import AudioEncoder
from funfactory.model.encoding_cache import encode_frozen
from funfactory.model.masking import mask_encoder_output
from funfactory.model.frontend import Frontend
from funfactory.model.hf_lock import HF_LOCK
from funfactory.model.llm import (IGNORE_INDEX, LLMInputs, Prompt, PromptTemplate, build_llm_inputs,
                                  load_llm, resolve_llm_path)
from funfactory.model.whisper import (WHISPER_FRAME_SECONDS, WhisperEncoder, WhisperFrontend,
                                      encode_in_windows, load_whisper_encoder, window_samples)


PARTS = ("encoder", "adaptor", "ctc", "llm")


@dataclass
class AudioEncoding:
    encoded: torch.Tensor  # (B, T, encoder_dim)
    encoded_lengths: torch.Tensor  # (B,)
    ctc_log_probs: torch.Tensor  # (B, T, ctc_vocab)
    audio_embeds: torch.Tensor  # (B, T', llm_hidden)
    audio_lengths: torch.Tensor  # (B,)


class FunASRModel(nn.Module):
    def __init__(self, config: ModelConfig, llm: nn.Module, tokenizer=None,
                 ctc_vocab: CTCVocab | None = None):
        super().__init__()
        config = copy.deepcopy(config)
        if ctc_vocab is not None:
            config.ctc_vocab_size = len(ctc_vocab)
        if config.ctc_text not in ("raw", "plain"):
            raise FunfactoryError(f"model config ctc_text is {config.ctc_text!r}: use \"raw\" "
                                  "(the label as is) or \"plain\" (lower case, no punctuation)")
        if config.ctc_vocab_size <= 0:
            raise FunfactoryError("config.ctc_vocab_size is 0: pass a CTCVocab or set the size")
        self.config = config
        if config.whisper is not None:
            self.frontend = WhisperFrontend(config.whisper)
            self.encoder = WhisperEncoder(config.whisper)
            encoder_dim, chunk_frames = config.whisper.d_model, config.whisper.chunk_frames
        else:
            self.frontend = Frontend(config.frontend)
            self.encoder = AudioEncoder(config.encoder, config.frontend.feature_dim)
            encoder_dim, chunk_frames = config.encoder.d_model, config.encoder.chunk_frames
        self.adaptor = Adaptor(config.adaptor, encoder_dim, llm.config.hidden_size, chunk_frames)
        self.ctc = CTCHead(encoder_dim, config.ctc_vocab_size, config.ctc_head)
        self.llm = llm
        self.tokenizer = tokenizer
        self.ctc_vocab = ctc_vocab
        self.template = PromptTemplate(system=config.system_prompt, instruction=config.instruction)

    @classmethod
    def build(cls, config: ModelConfig, llm_path: str | Path, ctc_texts: Iterable[str] = (),
              ctc_vocab_size: int = 8000, seed: int = 0) -> "FunASRModel":
        """A fresh model around the LLM in `llm_path`; CTC vocabulary from `ctc_texts`.

        With `config.whisper`, the encoder's weights come from `config.whisper.source`.
        """
        llm_dir = resolve_llm_path(llm_path)
        llm, tokenizer = load_llm(llm_dir)
        config = dataclasses.replace(config, llm_path=str(llm_dir.resolve()))
        vocab = CTCVocab.build(tokenizer, ctc_texts, max_size=ctc_vocab_size)
        torch.manual_seed(seed)
        model = cls(config, llm, tokenizer, vocab)
        if config.whisper is not None:
            if config.whisper.source:
                load_whisper_encoder(model.encoder, config.whisper.source)
            # Around a pretrained LLM the adaptor starts silent (zero output), so the first
            # steps do not feed the LLM random embeddings it would have to learn to ignore.
            nn.init.zeros_(model.adaptor.out_proj.weight)
            nn.init.zeros_(model.adaptor.out_proj.bias)
        return model

    @property
    def encoder_frame_seconds(self) -> float:
        if self.config.whisper is not None:
            return WHISPER_FRAME_SECONDS
        return self.config.frontend.encoder_frame_seconds

    def encoder_is_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.encoder.parameters())

    def encode_audio(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> AudioEncoding:
        if self.config.whisper is not None:
            # Whisper attends over at most 30 s: longer clips are encoded window by window
            encode = (partial(encode_frozen, self) if self.encoder_is_frozen()
                      else lambda w, n: self.encoder(*self.frontend(w, n)))
            encoded, enc_lengths = encode_in_windows(encode, waveforms, lengths,
                                                     window_samples(self.config.whisper))
            return self.heads(encoded, enc_lengths)
        feats, feat_lengths = self.frontend(waveforms, lengths)
        return self.encode_features(feats, feat_lengths)

    def encode_features(self, feats: torch.Tensor, lengths: torch.Tensor) -> AudioEncoding:
        if len(lengths) == 0 or int(lengths.min()) <= 0:
            raise FunfactoryError(
                "an utterance is shorter than one encoder frame (about 60 ms of audio): "
                "drop it or pad it before encoding")
        encoded, enc_lengths = self.encoder(feats, lengths)
        return self.heads(encoded, enc_lengths)

    def heads(self, encoded: torch.Tensor, enc_lengths: torch.Tensor) -> AudioEncoding:
        """The CTC head and the adaptor on encoder output."""
        if self.training and (self.config.masking.time_masks_per_second > 0
                              or self.config.masking.channel_masks > 0):
            encoded = mask_encoder_output(encoded, enc_lengths, self.config.masking)
        embeds, embed_lengths = self.adaptor(encoded, enc_lengths)
        return AudioEncoding(encoded, enc_lengths, self.ctc(encoded, enc_lengths), embeds,
                             embed_lengths)

    def ctc_target(self, text: str) -> str:
        """The text the CTC head learns for label `text` (`config.ctc_text`)."""
        return plain_text(text) if self.config.ctc_text == "plain" else text

    def prompts_with_hypotheses(self, enc: AudioEncoding, prompts) -> list[Prompt]:
        """The batch's prompts with the CTC head's best path in each (section 2, Figure 2);
        in training mode each hypothesis is perturbed at a rate drawn up to
        `config.hypothesis_noise`."""
        hyps = ctc_greedy(enc.ctc_log_probs.detach(), enc.encoded_lengths, self.ctc_vocab,
                          self.encoder_frame_seconds)
        out = []
        for i, hyp in enumerate(hyps):
            given = prompts[i] if prompts is not None else None
            prompt = (dataclasses.replace(given) if isinstance(given, Prompt)
                      else Prompt.from_sample(given))
            text = hyp.text
            if self.training and self.config.hypothesis_noise > 0:
                rate = float(torch.rand(())) * self.config.hypothesis_noise
                text = perturb_hypothesis(text, rate, int(torch.randint(2 ** 31, ())))
            prompt.ctc_hypothesis = text
            out.append(prompt)
        return out

    def build_llm_inputs(self, audio_embeds: torch.Tensor, audio_lengths: torch.Tensor,
                         prompts: Sequence[Prompt | dict | None] | None = None,
                         targets: list[str] | None = None, padding_side: str = "right") -> LLMInputs:
        prompts = [p if isinstance(p, Prompt) else Prompt.from_sample(p)
                   for p in (prompts or [None] * audio_embeds.shape[0])]
        return build_llm_inputs(self.llm, self.tokenizer, self.template, audio_embeds,
                                audio_lengths, prompts, targets, padding_side)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        texts = batch["texts"]
        enc = self.encode_audio(batch["waveforms"], batch["lengths"])
        zero = enc.encoded.new_zeros(())
        losses = {"ctc_loss": zero, "llm_loss": zero}
        if self.config.ctc_weight > 0:
            targets = [self.ctc_vocab.encode(self.ctc_target(t)) for t in texts]
            losses["ctc_loss"] = ctc_loss(enc.ctc_log_probs, enc.encoded_lengths, targets)
        if self.config.llm_weight > 0:
            prompts = batch.get("prompts")
            if self.config.ctc_hypothesis_in_prompt:
                prompts = self.prompts_with_hypotheses(enc, prompts)
            inputs = self.build_llm_inputs(enc.audio_embeds, enc.audio_lengths, prompts,
                                           targets=list(texts))
            losses["llm_loss"] = self._llm_loss(inputs)
        losses["loss"] = (self.config.ctc_weight * losses["ctc_loss"]
                          + self.config.llm_weight * losses["llm_loss"])
        return losses


    def _llm_loss(self, inputs: LLMInputs) -> torch.Tensor:
        """Next-token cross-entropy on the transcript, projecting only the positions that predict it."""
        targets = inputs.labels[:, 1:]
        keep = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)
        out = self.llm(inputs_embeds=inputs.inputs_embeds, attention_mask=inputs.attention_mask,
                       logits_to_keep=keep)
        logits = out.logits.float()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets[:, keep].reshape(-1),
                               ignore_index=IGNORE_INDEX)


def _part_parameters(model: FunASRModel, part: str) -> Iterable[tuple[str, nn.Parameter]]:
    if part not in PARTS:
        raise FunfactoryError(f"unknown model part {part!r}; parts are {list(PARTS)}")
    return getattr(model, part).named_parameters()


def set_trainable(model: FunASRModel, parts: Iterable[str]) -> list[str]:
    """Train only `parts` (names from PARTS); return the trainable parameter names.

    After `add_llm_lora`, "llm" trains the LoRA weights only; the LLM's base stays frozen.
    """
    parts = set(parts)
    unknown = parts - set(PARTS)
    if unknown:
        raise FunfactoryError(f"unknown model part(s) {sorted(unknown)}; parts are {list(PARTS)}")
    lora = is_lora(model)
    names = []
    for part in PARTS:
        for name, param in _part_parameters(model, part):
            train = part in parts and (part != "llm" or not lora or "lora_" in name)
            param.requires_grad_(train)
            if train:
                names.append(f"{part}.{name}")
    return names


def is_lora(model: FunASRModel) -> bool:
    return any("lora_" in name for name, _ in model.llm.named_parameters())


def add_llm_lora(model: FunASRModel, r: int = 8, alpha: int = 16, dropout: float = 0.0,
                 target_modules: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj",
                                                  "gate_proj", "up_proj", "down_proj")) -> None:
    """Wrap `model.llm` in a peft LoRA model (section 4.2 stages 3-4)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=list(target_modules), task_type="CAUSAL_LM")
    model.llm = get_peft_model(model.llm, config)


def count_parameters(model: FunASRModel) -> dict[str, int]:
    """Parameters per part and in total (meta tensors count too)."""
    counts = {part: sum(p.numel() for _, p in _part_parameters(model, part)) for part in PARTS}
    counts["total"] = sum(counts.values())
    return counts


def qwen3_config(shape: LLMShape):
    from transformers import Qwen3Config

    return Qwen3Config(vocab_size=shape.vocab_size, hidden_size=shape.hidden_size,
                       intermediate_size=shape.intermediate_size,
                       num_hidden_layers=shape.num_layers, num_attention_heads=shape.num_heads,
                       num_key_value_heads=shape.num_kv_heads, head_dim=shape.head_dim,
                       tie_word_embeddings=shape.tie_word_embeddings)


def meta_model(config: ModelConfig, ctc_vocab_size: int = 8000) -> FunASRModel:
    """The model of `config` with its LLM from `config.llm`, on the meta device (no memory)."""
    from transformers import AutoModelForCausalLM

    if config.ctc_vocab_size <= 0:
        config = dataclasses.replace(config, ctc_vocab_size=ctc_vocab_size)
    with HF_LOCK, torch.device("meta"):
        llm = AutoModelForCausalLM.from_config(qwen3_config(config.llm))
        return FunASRModel(config, llm)
