"""Save and load a `FunASRModel` as a folder of safetensors plus its config (report section 2 model).

Layout of a model folder:

    config.json          the ModelConfig (JSON; also valid YAML for `funfactory.config.load_config`)
    ctc_vocab.json       the CTC vocabulary as LLM token ids
    model.safetensors    frontend CMVN statistics, encoder, adaptor and CTC head
    llm/                 the LLM and its tokenizer (`save_pretrained`), unless `copy_llm=False`,
                         in which case config.json's `llm_path` names the original folder and the
                         LLM must not have been trained
    parameter_counts.json  parameters per part

A LoRA-wrapped LLM is written with its adapters merged into the base weights
(`funfactory.model.lora.merged_llm_weights`), so the saved folder is a plain checkpoint any
transformers or vLLM loader reads. The merge is computed on the side: saving leaves the live
model as it was, and a LoRA policy keeps training its adapters after a checkpoint.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from funfactory.config import load_config
from funfactory.errors import FunfactoryError, MissingAssetError
from funfactory.model.asr import FunASRModel, count_parameters
from funfactory.model.configs import ModelConfig
from funfactory.model.ctc import CTCVocab
from funfactory.model.llm import load_llm
from funfactory.model.lora import is_peft, merged_llm_weights

AUDIO_PARTS = ("frontend", "encoder", "adaptor", "ctc")


def audio_state_dict(model: FunASRModel) -> dict[str, torch.Tensor]:
    state = {}
    for part in AUDIO_PARTS:
        for name, tensor in getattr(model, part).state_dict().items():
            state[f"{part}.{name}"] = tensor.detach().contiguous().cpu()
    return state


def save_model(model: FunASRModel, folder: str | Path, copy_llm: bool = True) -> Path:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(model.config)
    if copy_llm:
        if is_peft(model.llm):
            model.llm.get_base_model().save_pretrained(
                out / "llm", state_dict=dict(merged_llm_weights(model.llm)))
        else:
            model.llm.save_pretrained(out / "llm")
        model.tokenizer.save_pretrained(out / "llm")
        config.llm_path = "llm"
    elif config.llm_path is None:
        raise FunfactoryError("the model has no llm_path to record: save with copy_llm=True")
    save_file(audio_state_dict(model), str(out / "model.safetensors"),
              metadata={"format": "funfactory-asr", "size": config.size})
    model.ctc_vocab.save(out / "ctc_vocab.json")
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2, ensure_ascii=False),
                                     encoding="utf-8")
    (out / "parameter_counts.json").write_text(json.dumps(count_parameters(model), indent=2),
                                               encoding="utf-8")
    return out


def load_model(folder: str | Path, llm_path: str | Path | None = None) -> FunASRModel:
    """Rebuild a saved model; `llm_path` overrides the LLM folder recorded in config.json."""
    folder = Path(folder)
    for name in ("config.json", "model.safetensors", "ctc_vocab.json"):
        if not (folder / name).is_file():
            raise MissingAssetError(f"{folder} lacks {name}: it is not a folder written by save_model")
    config = load_config(ModelConfig, folder / "config.json")
    recorded = Path(llm_path or config.llm_path or "")
    llm_dir = recorded if recorded.is_absolute() else folder / recorded
    llm, tokenizer = load_llm(llm_dir)
    vocab = CTCVocab.load(tokenizer, folder / "ctc_vocab.json")
    model = FunASRModel(config, llm, tokenizer, vocab)
    state = load_file(str(folder / "model.safetensors"))
    for part in AUDIO_PARTS:
        prefix = f"{part}."
        part_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        getattr(model, part).load_state_dict(part_state, strict=True)
    model.eval()
    return model


def load_encoder_weights(model: FunASRModel, folder: str | Path) -> list[str]:
    """Initialise the encoder from another saved model's encoder (section 4.1); return the names."""
    state = load_file(str(Path(folder) / "model.safetensors"))
    encoder_state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    model.encoder.load_state_dict(encoder_state, strict=True)
    return sorted(encoder_state)
