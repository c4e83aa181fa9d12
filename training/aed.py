"""Supervised AED encoder pre-training (Fun-ASR section 4.1): encoder + attention decoder.

The audio encoder (the same `AudioEncoder` the LLM-ASR model uses, optionally starting from a
Best-RQ checkpoint) feeds a small transformer decoder trained with label-smoothed cross-entropy
on the transcript, jointly with a CTC head on the encoder (weight `aed.ctc_weight`). Targets are
the LLM-ASR model's CTC vocabulary (LLM word pieces with byte fallback), so the pre-trained CTC
head already speaks the right units. The export's `model.safetensors` holds `frontend.*`,
`encoder.*`, `ctc.*` and `decoder.*` tensors; `funfactory.model.checkpoint.load_encoder_weights`
(or `model.encoder_init` in an SFT config) initialises the LLM-ASR encoder from it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from funfactory.errors import FunfactoryError
from funfactory.model.configs import EncoderConfig, FrontendConfig
from funfactory.model.ctc import CTCHead, ctc_loss
from funfactory.model.encoder import AudioEncoder
from funfactory.model.frontend import Frontend
from funfactory.training.collate import IGNORE_INDEX, pad_labels
from funfactory.training.config import AEDConfig, TrainConfig

log = logging.getLogger(__name__)


class AttentionDecoder(nn.Module):
    """Token embeddings + learned positions -> causal transformer decoder over encoder memory."""

    def __init__(self, vocab_size: int, encoder_dim: int, config: AEDConfig):
        super().__init__()
        d = config.decoder_dim
        self.embed = nn.Embedding(vocab_size, d)
        self.positions = nn.Embedding(config.max_target_tokens + 1, d)
        self.memory_proj = nn.Linear(encoder_dim, d)
        layer = nn.TransformerDecoderLayer(d, config.decoder_heads, config.decoder_ffn,
                                           dropout=0.0, batch_first=True, norm_first=True)
        self.layers = nn.TransformerDecoder(layer, config.decoder_layers)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, vocab_size)

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor,
                memory_lengths: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        x = self.embed(tokens) + self.positions(torch.arange(t, device=tokens.device))[None]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=tokens.device), 1)
        memory_pad = (torch.arange(memory.shape[1], device=memory.device)[None, :]
                      >= memory_lengths[:, None])
        x = self.layers(x, self.memory_proj(memory), tgt_mask=causal,
                        memory_key_padding_mask=memory_pad)
        return self.out(self.norm(x))


class AEDModel(nn.Module):
    """Frontend -> encoder -> {CTC head, attention decoder}. Token `vocab_size` is sos/eos."""

    def __init__(self, frontend: FrontendConfig, encoder: EncoderConfig, vocab_size: int,
                 config: AEDConfig):
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.sos_eos = vocab_size
        self.frontend = Frontend(frontend)
        self.encoder = AudioEncoder(encoder, frontend.feature_dim)
        self.ctc = CTCHead(encoder.d_model, vocab_size)
        self.decoder = AttentionDecoder(vocab_size + 1, encoder.d_model, config)

    def encode(self, waveforms, lengths):
        with torch.autocast(waveforms.device.type, enabled=False):  # fbank in fp32 under AMP
            feats, feat_lengths = self.frontend(waveforms.float(), lengths)
        return self.encoder(feats, feat_lengths)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor,
                targets: list[list[int]]) -> dict[str, torch.Tensor]:
        limit = self.config.max_target_tokens
        targets = [t[:limit] for t in targets]
        encoded, enc_lengths = self.encode(waveforms, lengths)
        inputs, _ = pad_labels([[self.sos_eos] + t for t in targets])
        labels, _ = pad_labels([t + [self.sos_eos] for t in targets])
        inputs = inputs.masked_fill(inputs == IGNORE_INDEX, self.sos_eos).to(encoded.device)
        logits = self.decoder(inputs, encoded, enc_lengths)
        labels = labels.to(encoded.device)
        ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                             ignore_index=IGNORE_INDEX,
                             label_smoothing=self.config.label_smoothing)
        valid = labels != IGNORE_INDEX
        accuracy = (logits.argmax(-1)[valid] == labels[valid]).float().mean()
        out = {"ce_loss": ce, "token_accuracy": accuracy.detach()}
        w = self.config.ctc_weight
        if w > 0:
            out["ctc_loss"] = ctc_loss(self.ctc(encoded), enc_lengths, targets)
            out["loss"] = (1 - w) * ce + w * out["ctc_loss"]
        else:
            out["loss"] = ce
        return out

    @torch.no_grad()
    def greedy(self, waveforms: torch.Tensor, lengths: torch.Tensor,
               max_tokens: int = 128) -> list[list[int]]:
        encoded, enc_lengths = self.encode(waveforms, lengths)
        tokens = torch.full((encoded.shape[0], 1), self.sos_eos, dtype=torch.long,
                            device=encoded.device)
        done = torch.zeros(encoded.shape[0], dtype=torch.bool, device=encoded.device)
        for _ in range(min(max_tokens, self.config.max_target_tokens)):
            nxt = self.decoder(tokens, encoded, enc_lengths)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, self.sos_eos), nxt)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            done |= nxt == self.sos_eos
            if bool(done.all()):
                break
        return [[i for i in row[1:] if i != self.sos_eos] for row in tokens.tolist()]


class AEDTask:
    """Trainer task: AED pre-training on labelled shards; needs model.llm_path for the tokenizer."""

    def __init__(self, config: TrainConfig):
        from funfactory.model.cmvn import compute_global_cmvn
        from funfactory.model.configs import model_config
        from funfactory.model.ctc import CTCVocab
        from funfactory.training.sft import sample_texts_and_audio, training_shards

        if not config.model.llm_path:
            raise FunfactoryError("AED pre-training needs model.llm_path: its tokenizer defines "
                                  "the target units (the LLM-ASR model's CTC vocabulary)")
        from transformers import AutoTokenizer

        self.config = config
        self.tokenizer = AutoTokenizer.from_pretrained(config.model.llm_path, local_files_only=True)
        texts, audio = sample_texts_and_audio(training_shards(config),
                                              max_audio=config.model.cmvn_utterances)
        self.vocab = CTCVocab.build(self.tokenizer, texts, max_size=config.model.ctc_vocab_size)
        self.model_config = model_config(config.model.size)
        torch.manual_seed(config.run.seed)
        self.model = AEDModel(self.model_config.frontend, self.model_config.encoder,
                              len(self.vocab), config.aed)
        compute_global_cmvn(self.model.frontend, audio)
        if config.model.encoder_init:
            from funfactory.model.checkpoint import load_encoder_weights
            from funfactory.training.sft import copy_encoder

            copy_encoder(self.model, config.model.encoder_init)
            load_encoder_weights(self.model, config.model.encoder_init)
        self._val: list | None = None

    def loss(self, model, batch: dict) -> dict[str, torch.Tensor]:
        return model(batch["waveforms"], batch["lengths"],
                     [self.vocab.encode(t) for t in batch["texts"]])

    def validate(self, model) -> dict[str, float]:
        from funfactory.eval.scoring import score
        from funfactory.model.decode import waveform_batch
        from funfactory.shards.reader import ShardReader

        run = self.config.run
        if not run.val_shards:
            return {}
        if self._val is None:
            self._val = [s for _, s in zip(range(run.val_max_utterances),
                                           ShardReader(run.val_shards))]
        device = next(model.parameters()).device
        refs, hyps = {}, {}
        for i in range(0, len(self._val), run.val_batch_size):
            chunk = self._val[i:i + run.val_batch_size]
            waves, lengths = waveform_batch([s.audio for s in chunk])
            for sample, ids in zip(chunk, model.greedy(waves.to(device), lengths.to(device))):
                refs[sample.key], hyps[sample.key] = sample.meta["text"], self.vocab.decode(ids)
        return {f"val_{m}": score(refs, hyps, metric=m).rate for m in ("cer", "wer")}

    def export(self, model, folder: Path) -> None:
        from funfactory.training.bestrq import save_pretrained_encoder

        save_pretrained_encoder(model, folder, self.model_config, kind="aed")
        self.vocab.save(Path(folder) / "ctc_vocab.json")
