"""Section 4.2's stages freeze exactly the parameters they should, counted."""

from __future__ import annotations

import copy

import pytest
import torch

from safetensors.torch import load_file

from funfactory.model.asr import FunASRModel, count_parameters
from funfactory.model.checkpoint import load_encoder_weights
from funfactory.model.configs import model_config
from funfactory.shards.reader import ShardReader
from funfactory.training.runner import run
from funfactory.training.sft import copy_encoder
from funfactory.training.stages import STAGES, apply_stage, get_stage
from funfactory.model.tiny_llm import cached_tiny_llm
from tests.conftest_training import sft_config, write_speech_shards


def load_sample_audio(shards: str, index: int):
    return [s.audio for s in ShardReader(shards)][index]

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="module")
def base_model(request):
    torch.set_num_threads(1)
    llm = cached_tiny_llm()
    return FunASRModel.build(model_config("tiny"), llm, ["the budget review starts at nine"],
                             ctc_vocab_size=400)


@pytest.fixture(scope="module")
def lora_model(base_model):
    return copy.deepcopy(base_model)


def _lora_size(model, r: int) -> int:
    """r x (in + out) for every LoRA target linear of the LLM, counted before wrapping."""
    return sum(r * (m.in_features + m.out_features) for name, m in model.llm.named_modules()
               if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in LORA_TARGETS)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_trains_exactly_its_parts(base_model, lora_model, name):
    counts = count_parameters(base_model)
    lora = _lora_size(base_model, r=4)
    expected = {
        "adaptor": counts["adaptor"],
        "encoder_adaptor": counts["encoder"] + counts["adaptor"],
        "llm_lora": lora,
        "full_lora": counts["encoder"] + counts["adaptor"] + lora,
        "ctc": counts["ctc"],
        "contextual": counts["encoder"] + counts["adaptor"] + lora,
        "hypothesis_lora": counts["adaptor"] + lora,
    }[name]
    model = lora_model if STAGES[name].lora else base_model  # apply_stage resets every flag
    summary = apply_stage(model, STAGES[name], lora_r=4)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert summary["trainable"] == expected
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected
    assert summary["trainable"] + summary["frozen"] == counts["total"] + (lora if STAGES[name].lora else 0)
    if STAGES[name].lora:
        assert trainable and all("lora_" in n for n in trainable if n.startswith("llm."))
        assert not any("embed_tokens" in n for n in trainable)
    for part in ("encoder", "adaptor", "ctc"):
        part_trains = part in STAGES[name].trainable
        assert summary[part] == (counts[part] if part_trains else 0), part


def test_stage_losses_and_numbers():
    assert get_stage(1).name == "adaptor" and get_stage("5").name == "ctc"
    assert get_stage("ctc").llm_weight == 0 and get_stage("ctc").ctc_weight == 1
    assert all(s.ctc_weight == 0 for s in STAGES.values() if s.name != "ctc")
    with pytest.raises(Exception, match="unknown training stage"):
        get_stage("everything")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, speech_clips):
    folder = tmp_path_factory.mktemp("aed") / "shards"
    write_speech_shards(folder, speech_clips, 7, per_shard=7, dataset="lab")
    return str(folder)


def test_aed_checkpoint_encoder_loads_into_the_llm_asr_model(base_model, labelled, tmp_path,
                                                             request):
    llm = cached_tiny_llm()
    config = sft_config(labelled, tmp_path / "aed", llm, stage="adaptor", max_steps=3)
    results = run("pretrain-aed", config)
    assert torch.isfinite(torch.tensor(results["ce_loss"])) and results["ctc_loss"] > 0
    export = tmp_path / "aed" / "final"
    assert (export / "ctc_vocab.json").is_file()
    aed = load_file(str(export / "model.safetensors"))

    model = copy.deepcopy(base_model)
    copy_encoder(model, export)
    names = load_encoder_weights(model, export)
    assert len(names) == len([k for k in aed if k.startswith("encoder.")]) > 0
    for name, tensor in model.encoder.state_dict().items():
        assert torch.equal(tensor, aed[f"encoder.{name}"]), name
    assert torch.equal(model.frontend.cmvn.mean, aed["frontend.cmvn.mean"])
    waves = torch.stack([torch.from_numpy(a[:16000]) for a in
                         [load_sample_audio(labelled, i) for i in range(2)]])
    losses = model({"waveforms": waves, "lengths": torch.tensor([16000, 16000]),
                    "texts": ["the budget", "the team"]})
    assert torch.isfinite(losses["loss"])
