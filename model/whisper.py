"""A pretrained Whisper encoder as the audio encoder (Fun-ASR section 4.1), with Whisper's log-mel.

Section 4.1 initialises the audio encoder from the encoder of a pretrained AED model; Whisper is
one. `WhisperEncoder` is Whisper's encoder in torch (two convolutions, fixed sinusoidal positions,
pre-LayerNorm transformer layers with GELU MLPs, a final LayerNorm; one output frame per 20 ms),
and `WhisperFrontend` computes Whisper's 80-bin log-mel (25 ms Hann window, 10 ms hop, Slaney mel,
log10 clamped to 8 below the maximum, scaled to about [-1, 1]).

Whisper was trained on 30 s windows padded with silence, and encoding a clip without padding
degrades its last ~200 ms; the frontend therefore appends `pad_seconds` of silence to every clip
(a few seconds restore the tail) while the encoder still runs on the clip's own length rather
than 30 s, which is about ten times faster. Encoder outputs past a clip's length are zeroed.

Weights come from either

- a CTranslate2 Whisper folder (`model.bin`): the packaged Whisper base and tiny.en ship in this
  form. `read_ctranslate2_variables` reads the binary layout CTranslate2's own serialiser writes
  (`ctranslate2/specs/model_spec.py`: version, spec name, revision, then per variable its name,
  rank, shape, dtype id, byte count and bytes, then aliases); or
- a local Hugging Face Whisper folder (`model.safetensors` with `model.encoder.*` tensors).

`cached_whisper_encoder(source)` converts once into the funfactory cache (a safetensors file and
its `WhisperEncoderConfig`), and tests/test_model_whisper.py checks the torch encoder against
`ctranslate2.models.Whisper.encode` on a real clip.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from funfactory.cache import cache_root, file_lock
from funfactory.errors import FunfactoryError, MissingAssetError
from funfactory.model.configs import WhisperEncoderConfig

SAMPLE_RATE = 16000
WHISPER_FRAME_SECONDS = 0.02  # one encoder output frame (two 10 ms mel frames)
N_FFT = 400
HOP = 160
PACKAGED = ("whisper-base", "whisper-tiny.en")
CT2_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # id 5 is bfloat16


def whisper_mel_filters(n_mels: int) -> torch.Tensor:
    """Whisper's (Slaney) mel filter bank, (N_FFT // 2 + 1, n_mels)."""
    from transformers.audio_utils import mel_filter_bank

    return torch.from_numpy(mel_filter_bank(
        num_frequency_bins=N_FFT // 2 + 1, num_mel_filters=n_mels, min_frequency=0.0,
        max_frequency=SAMPLE_RATE / 2, sampling_rate=SAMPLE_RATE, norm="slaney",
        mel_scale="slaney")).float()


class WhisperFrontend(nn.Module):
    """Waveforms (B, N) at 16 kHz -> Whisper log-mel (B, T, n_mels) with `pad_seconds` of silence
    appended to each clip; returned lengths count the clip's own frames (N // 160)."""

    def __init__(self, config: WhisperEncoderConfig):
        super().__init__()
        self.config = config
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
        self.register_buffer("filters", whisper_mel_filters(config.n_mels), persistent=False)

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, N // 160, n_mels), each row's dynamic range clamped on its own."""
        stft = torch.stft(audio.float(), N_FFT, HOP, window=self.window, return_complex=True)
        power = stft[..., :-1].abs().square()  # (B, 201, T)
        mel = (power.transpose(1, 2) @ self.filters).clamp(min=1e-10).log10()
        mel = torch.maximum(mel, mel.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (mel + 4.0) / 4.0

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if waveforms.dim() != 2:
            raise FunfactoryError(
                f"the Whisper frontend expects waveforms shaped (batch, samples), got "
                f"{tuple(waveforms.shape)}")
        lengths = lengths.to(waveforms.device)
        pad = int(self.config.pad_seconds * SAMPLE_RATE)
        width = int(lengths.max()) + pad
        audio = torch.zeros(waveforms.shape[0], width, device=waveforms.device)
        for b in range(waveforms.shape[0]):
            n = int(lengths[b])
            audio[b, :n] = waveforms[b, :n]
        frames = torch.div(lengths, HOP, rounding_mode="floor")
        return self.log_mel(audio), frames


class WhisperLayer(nn.Module):
    """One pre-LayerNorm Whisper encoder layer; q, k, v in one projection as CTranslate2 stores."""

    def __init__(self, d_model: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.attn_ln = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.mlp_ln = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, 4 * d_model)
        self.fc2 = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.attn_ln(x)).view(b, t, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v)
        x = x + self.out(attn.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.mlp_ln(x))))


class WhisperEncoder(nn.Module):
    """Whisper's audio encoder: log-mel (B, T, n_mels) -> (B, ceil(T / 2), d_model) at 20 ms."""

    def __init__(self, config: WhisperEncoderConfig):
        super().__init__()
        self.config = config
        d = config.d_model
        self.conv1 = nn.Conv1d(config.n_mels, d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(config.max_frames, d))
        self.layers = nn.ModuleList(WhisperLayer(d, config.num_heads)
                                    for _ in range(config.num_layers))
        self.ln_post = nn.LayerNorm(d)

    def forward(self, mel: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode every frame (the clip and its silence padding); zero the frames past `lengths`."""
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel.transpose(1, 2))))).transpose(1, 2)
        if x.shape[1] > self.config.max_frames:
            raise FunfactoryError(
                f"{x.shape[1] * 0.02:.1f} s of audio (with padding) exceeds Whisper's 30 s window: "
                "encode long recordings with encode_in_windows, or segment them")
        x = x + self.positions[: x.shape[1]]
        for layer in self.layers:
            x = layer(x)
        x = self.ln_post(x)
        out_lengths = torch.div(lengths.to(x.device) + 1, 2, rounding_mode="floor")
        valid = torch.arange(x.shape[1], device=x.device)[None, :] < out_lengths[:, None]
        return x * valid[..., None], out_lengths


def window_samples(config: WhisperEncoderConfig) -> int:
    """The longest clip one Whisper window encodes: `max_frames` output frames (20 ms each)
    less the silence the frontend appends."""
    return int((config.max_frames * WHISPER_FRAME_SECONDS - config.pad_seconds) * SAMPLE_RATE)


def encode_in_windows(encode, waveforms: torch.Tensor, lengths: torch.Tensor, window: int
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """`encode(waveforms, lengths)` -> (encoded, lengths) for clips of any length: a clip longer
    than `window` samples is cut into consecutive windows (the last one shorter), all windows are
    encoded as one batch (a shorter last window is padded with silence, as Whisper's own 30 s
    input is), and each clip's outputs are joined in order. Clips that fit are encoded as they
    are, so utterance-length input is unchanged; a long recording's frames near a cut hear only
    their own side of it."""
    if int(lengths.max()) <= window:
        return encode(waveforms, lengths)
    pieces = [(b, start, min(int(n), start + window)) for b, n in enumerate(lengths.tolist())
              for start in range(0, int(n), window)]
    batch = torch.zeros(len(pieces), window, device=waveforms.device)
    for row, (b, start, end) in enumerate(pieces):
        batch[row, : end - start] = waveforms[b, start:end]
    piece_lengths = torch.tensor([end - start for _, start, end in pieces], device=waveforms.device)
    encoded, encoded_lengths = encode(batch, piece_lengths)
    rows: list[list[torch.Tensor]] = [[] for _ in range(waveforms.shape[0])]
    for row, (b, _, _) in enumerate(pieces):
        rows[b].append(encoded[row, : int(encoded_lengths[row])])
    joined = [torch.cat(r) if r else encoded.new_zeros(0, encoded.shape[-1]) for r in rows]
    out_lengths = torch.tensor([len(j) for j in joined], device=waveforms.device)
    out = encoded.new_zeros(len(joined), int(out_lengths.max()), encoded.shape[-1])
    for b, j in enumerate(joined):
        out[b, : len(j)] = j
    return out, out_lengths


def read_ctranslate2_variables(model_bin: str | Path, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 `model.bin` whose names start with `prefix`, as arrays."""
    path = Path(model_bin)
    if not path.is_file():
        raise MissingAssetError(f"{path} does not exist: give a CTranslate2 Whisper folder")
    out: dict[str, np.ndarray] = {}
    with path.open("rb") as f:
        def read(fmt: str):
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def read_string() -> str:
            return f.read(read("H"))[:-1].decode("utf-8")

        version = read("I")
        if version < 5:
            raise FunfactoryError(f"{path}: CTranslate2 binary version {version} is not supported "
                                  "(needs 5 or later); re-convert the model with CTranslate2 >= 3")
        spec = read_string()
        if "Whisper" not in spec:
            raise FunfactoryError(f"{path} holds a {spec}, not a Whisper model")
        read("I")  # revision
        for _ in range(read("I")):
            name = read_string()
            shape = tuple(read("I") for _ in range(read("B")))
            dtype_id, num_bytes = read("B"), read("I")
            if not name.startswith(prefix):
                f.seek(num_bytes, os.SEEK_CUR)
                continue
            raw = f.read(num_bytes)
            if CT2_DTYPES[dtype_id] is None:
                bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
                array = bits.view(np.float32)
            else:
                array = np.frombuffer(raw, dtype=CT2_DTYPES[dtype_id])
            out[name[len(prefix):]] = array.reshape(shape)
    return out


def convert_ctranslate2(folder: str | Path) -> tuple[WhisperEncoderConfig, dict[str, torch.Tensor]]:
    """A CTranslate2 Whisper folder -> (config, `WhisperEncoder` state dict in float32)."""
    v = read_ctranslate2_variables(Path(folder) / "model.bin")
    t = {k: torch.from_numpy(a.astype(np.float32)) for k, a in v.items()}
    layers = len({k.split("/")[0] for k in v if re.match(r"layer_\d+/", k)})
    config = WhisperEncoderConfig(n_mels=t["conv1/weight"].shape[1], d_model=t["conv1/weight"].shape[0],
                                  num_layers=layers, num_heads=int(v["num_heads"]),
                                  max_frames=t["position_encodings/encodings"].shape[0])
    state = {"conv1.weight": t["conv1/weight"], "conv1.bias": t["conv1/bias"],
             "conv2.weight": t["conv2/weight"], "conv2.bias": t["conv2/bias"],
             "positions": t["position_encodings/encodings"],
             "ln_post.weight": t["layer_norm/gamma"], "ln_post.bias": t["layer_norm/beta"]}
    for i in range(layers):
        src, dst = f"layer_{i}/", f"layers.{i}."
        for ours, theirs in (("attn_ln", "self_attention/layer_norm"), ("mlp_ln", "ffn/layer_norm")):
            state[dst + ours + ".weight"] = t[src + theirs + "/gamma"]
            state[dst + ours + ".bias"] = t[src + theirs + "/beta"]
        for ours, theirs in (("qkv", "self_attention/linear_0"), ("out", "self_attention/linear_1"),
                             ("fc1", "ffn/linear_0"), ("fc2", "ffn/linear_1")):
            state[dst + ours + ".weight"] = t[src + theirs + "/weight"]
            state[dst + ours + ".bias"] = t[src + theirs + "/bias"]
    return config, state


def convert_huggingface(folder: str | Path) -> tuple[WhisperEncoderConfig, dict[str, torch.Tensor]]:
    """A local Hugging Face Whisper folder -> (config, `WhisperEncoder` state dict in float32)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    files = sorted(folder.glob("model*.safetensors"))
    if not files or not (folder / "config.json").is_file():
        raise MissingAssetError(f"{folder} has no config.json and model*.safetensors: give a "
                                "Hugging Face Whisper folder saved with safetensors")
    hf = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    t: dict[str, torch.Tensor] = {}
    for file in files:
        t.update({k.removeprefix("model.encoder."): v.float() for k, v in load_file(str(file)).items()
                  if k.startswith("model.encoder.")})
    layers = hf["encoder_layers"]
    config = WhisperEncoderConfig(n_mels=hf["num_mel_bins"], d_model=hf["d_model"], num_layers=layers,
                                  num_heads=hf["encoder_attention_heads"],
                                  max_frames=hf["max_source_positions"])
    state = {"conv1.weight": t["conv1.weight"], "conv1.bias": t["conv1.bias"],
             "conv2.weight": t["conv2.weight"], "conv2.bias": t["conv2.bias"],
             "positions": t["embed_positions.weight"],
             "ln_post.weight": t["layer_norm.weight"], "ln_post.bias": t["layer_norm.bias"]}
    for i in range(layers):
        src, dst = f"layers.{i}.", f"layers.{i}."
        a = src + "self_attn."
        state[dst + "qkv.weight"] = torch.cat([t[a + "q_proj.weight"], t[a + "k_proj.weight"],
                                               t[a + "v_proj.weight"]])
        state[dst + "qkv.bias"] = torch.cat([t[a + "q_proj.bias"], torch.zeros_like(t[a + "q_proj.bias"]),
                                             t[a + "v_proj.bias"]])
        for ours, theirs in (("out", "self_attn.out_proj"), ("fc1", "fc1"), ("fc2", "fc2"),
                             ("attn_ln", "self_attn_layer_norm"), ("mlp_ln", "final_layer_norm")):
            state[dst + ours + ".weight"] = t[src + theirs + ".weight"]
            state[dst + ours + ".bias"] = t[src + theirs + ".bias"]
    return config, state


def whisper_source_dir(source: str) -> Path:
    """A packaged Whisper name (`whisper-base`, `whisper-tiny.en`) or a local folder."""
    from funfactory.asr.whisper import whisper_base_dir, whisper_tiny_en_dir

    if source == "whisper-base":
        return whisper_base_dir()
    if source == "whisper-tiny.en":
        return whisper_tiny_en_dir()
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise MissingAssetError(f"Whisper encoder source {source!r} is neither a packaged model "
                                f"({', '.join(PACKAGED)}) nor a local folder")
    return folder


def cached_whisper_encoder(source: str, cache: Path | None = None) -> Path:
    """Convert `source` once into `$FUNFACTORY_CACHE/models/whisper-encoder/<key>/`; return it.

    The folder holds `encoder.safetensors` and `config.json` (a `WhisperEncoderConfig`); the key
    covers the source folder and its weight files' sizes and times, so new weights convert again.
    """
    from safetensors.torch import save_file

    folder = whisper_source_dir(source).resolve()
    weights = sorted(folder.glob("model*.safetensors")) or [folder / "model.bin"]
    stamp = "|".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in weights if p.is_file())
    if not stamp:
        raise MissingAssetError(f"{folder} has neither model.bin (CTranslate2) nor "
                                "model*.safetensors (Hugging Face): not a Whisper model folder")
    key = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    target = (cache or cache_root()) / "models" / "whisper-encoder" / f"{folder.name}-{key}"
    if (target / "config.json").is_file():
        return target
    with file_lock(target.with_name(target.name + ".lock")):
        if (target / "config.json").is_file():
            return target
        convert = convert_ctranslate2 if (folder / "model.bin").is_file() else convert_huggingface
        config, state = convert(folder)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        partial.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(partial / "encoder.safetensors"))
        (partial / "config.json").write_text(json.dumps(
            {**dataclasses.asdict(config), "source": source, "source_dir": str(folder)}, indent=2),
            encoding="utf-8")
        os.replace(partial, target)
    return target


def load_whisper_encoder(encoder: WhisperEncoder, source: str) -> Path:
    """Load the converted weights of `source` into `encoder`; return the cache folder used."""
    from safetensors.torch import load_file

    folder = cached_whisper_encoder(source)
    saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    for name in ("n_mels", "d_model", "num_layers", "num_heads"):
        if saved[name] != getattr(encoder.config, name):
            raise FunfactoryError(
                f"Whisper encoder {source!r} has {name}={saved[name]} but the model config says "
                f"{getattr(encoder.config, name)}: use the size made for this source")
    encoder.load_state_dict(load_file(str(folder / "encoder.safetensors")), strict=True)
    return folder
