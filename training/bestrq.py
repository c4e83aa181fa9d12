"""Best-RQ self-supervised encoder pre-training (Fun-ASR section 4.1; Chiu et al., 2022).

A random-projection quantizer labels every encoder frame of unlabelled speech: the frame's
normalised LFR fbank vector (560 = 7 x 80 dims, one per 60 ms) is multiplied by a fixed random
matrix, L2-normalised, and replaced by the index of its nearest vector in a fixed random
(normalised) codebook. Neither the projection nor the codebook ever trains - they are buffers,
not parameters, so no optimiser can see them. Spans of frames are masked (replaced by small
noise) and the encoder, through a linear head, predicts the codes of the masked frames with
cross-entropy.

Masks are drawn per sample from a seed of (run seed, sample key, step), so a run gives the same
masks on any number of ranks. The encoder can start from the first layers of a local text LLM
(`funfactory.model.encoder.init_from_llm`), as the report does. `BestRQTask.export` writes
`model.safetensors` with `frontend.*` (CMVN) and `encoder.*` tensors, which
`funfactory.model.checkpoint.load_encoder_weights` (or AED pre-training) takes as its encoder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from funfactory.model.configs import EncoderConfig, FrontendConfig
from funfactory.model.encoder import AudioEncoder
from funfactory.model.frontend import Frontend
from funfactory.training.config import BestRQConfig, TrainConfig
from funfactory.training.loader import stable_seed

log = logging.getLogger(__name__)


class RandomProjectionQuantizer(nn.Module):
    """Frozen random projection + random codebook(s): features (B, T, D) -> codes (B, T, N)."""

    def __init__(self, input_dim: int, codebook_size: int, codebook_dim: int,
                 num_codebooks: int = 1, seed: int = 1234):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        projection = torch.randn(num_codebooks, input_dim, codebook_dim, generator=g)
        projection *= (2.0 / (input_dim + codebook_dim)) ** 0.5  # Xavier-normal scale
        codebooks = F.normalize(torch.randn(num_codebooks, codebook_size, codebook_dim,
                                            generator=g), dim=-1)
        self.register_buffer("projection", projection)
        self.register_buffer("codebooks", codebooks)

    @torch.no_grad()
    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        projected = F.normalize(torch.einsum("btd,ndc->btnc", feats.float(), self.projection),
                                dim=-1)
        similarity = torch.einsum("btnc,nkc->btnk", projected, self.codebooks)
        return similarity.argmax(dim=-1)


def span_mask(length: int, num_frames: int, prob: float, span: int,
              generator: torch.Generator) -> torch.Tensor:
    """(num_frames,) bool: each valid frame starts a masked span of `span` frames with `prob`;
    at least one span per utterance."""
    starts = torch.rand(length, generator=generator) < prob
    if not starts.any():
        starts[torch.randint(0, max(1, length - span + 1), (1,), generator=generator)] = True
    mask = torch.zeros(num_frames, dtype=torch.bool)
    for s in starts.nonzero().flatten().tolist():
        mask[s: min(s + span, length)] = True
    return mask


class BestRQModel(nn.Module):
    def __init__(self, frontend: FrontendConfig, encoder: EncoderConfig, config: BestRQConfig):
        super().__init__()
        self.config = config
        self.frontend = Frontend(frontend)
        self.encoder = AudioEncoder(encoder, frontend.feature_dim)
        self.quantizer = RandomProjectionQuantizer(frontend.feature_dim, config.codebook_size,
                                                   config.codebook_dim, config.num_codebooks,
                                                   config.quantizer_seed)
        self.head = nn.Linear(encoder.d_model, config.num_codebooks * config.codebook_size)

    def masks(self, lengths: torch.Tensor, num_frames: int, keys: list[str], seed: int,
              step: int) -> torch.Tensor:
        rows = []
        for length, key in zip(lengths.tolist(), keys):
            g = torch.Generator().manual_seed(stable_seed(seed, "bestrq-mask", key, step) % 2**63)
            rows.append(span_mask(length, num_frames, self.config.mask_prob,
                                  self.config.mask_span, g))
        return torch.stack(rows)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor, keys: list[str],
                seed: int = 0, step: int = 0) -> dict[str, torch.Tensor]:
        with torch.no_grad(), torch.autocast(waveforms.device.type, enabled=False):
            feats, feat_lengths = self.frontend(waveforms.float(), lengths)
            targets = self.quantizer(feats)  # (B, T, N)
            mask = self.masks(feat_lengths.cpu(), feats.shape[1], keys, seed, step).to(feats.device)
            noise = torch.stack([
                torch.randn(feats.shape[1:], generator=torch.Generator().manual_seed(
                    stable_seed(seed, "bestrq-noise", key, step) % 2**63))
                for key in keys]).to(feats.device) * self.config.noise_std
            masked = torch.where(mask[..., None], noise, feats)
        encoded, _ = self.encoder(masked, feat_lengths)
        n, k = self.config.num_codebooks, self.config.codebook_size
        logits = self.head(encoded[mask]).view(-1, n, k)
        loss = F.cross_entropy(logits.reshape(-1, k).float(), targets[mask].reshape(-1))
        accuracy = (logits.argmax(-1) == targets[mask]).float().mean()
        return {"loss": loss, "accuracy": accuracy.detach(),
                "masked_fraction": mask.float().sum() / feat_lengths.sum()}


class BestRQTask:
    """Trainer task: Best-RQ on the shards of `config.data` (labels are ignored)."""

    def __init__(self, config: TrainConfig):
        from funfactory.model.cmvn import compute_global_cmvn
        from funfactory.model.configs import model_config
        from funfactory.model.encoder import init_from_llm
        from funfactory.training.sft import sample_texts_and_audio, training_shards

        self.config = config
        sizes = model_config(config.model.size)
        torch.manual_seed(config.run.seed)
        self.model = BestRQModel(sizes.frontend, sizes.encoder, config.bestrq)
        _, audio = sample_texts_and_audio(training_shards(config), max_texts=0,
                                          max_audio=config.model.cmvn_utterances)
        compute_global_cmvn(self.model.frontend, audio)
        if config.model.encoder_llm_layers > 0:
            if not config.model.llm_path:
                from funfactory.errors import FunfactoryError

                raise FunfactoryError("model.encoder_llm_layers > 0 needs model.llm_path, the "
                                      "local LLM folder whose layers initialise the encoder")
            report = init_from_llm(self.model.encoder, config.model.llm_path,
                                   config.model.encoder_llm_layers)
            log.info("encoder from LLM layers: %d tensors copied, %d skipped",
                     len(report["copied"]), len(report["skipped"]))
        self.model_config = sizes

    def loss(self, model, batch: dict) -> dict[str, torch.Tensor]:
        return model(batch["waveforms"], batch["lengths"], batch["keys"],
                     seed=self.config.run.seed, step=int(batch.get("step", 0)))

    def export(self, model, folder: Path) -> None:
        save_pretrained_encoder(model, folder, self.model_config, kind="bestrq")


def save_pretrained_encoder(model: nn.Module, folder: str | Path, model_config,
                            kind: str) -> Path:
    """Write `model.safetensors` (frontend, encoder and the pre-training heads) + config.json."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": f"funfactory-{kind}"})
    (folder / "config.json").write_text(json.dumps(
        {"kind": kind, "model": model_config.to_dict()}, indent=2), encoding="utf-8")
    return folder
