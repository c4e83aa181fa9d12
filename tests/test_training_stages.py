"""Section 4.2's stages freeze exactly the parameters they should, counted."""

from __future__ import annotations

import copy

import pytest
import torch

from funfactory.model.asr import FunASRModel, count_parameters
from funfactory.model.configs import model_config
from funfactory.training.stages import STAGES, apply_stage, get_stage
from tests.conftest_training import tiny_llm_folder

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="module")
def base_model(request):
    torch.set_num_threads(1)
    llm = tiny_llm_folder(request.config.cache.mkdir("funfactory-training"))
    return FunASRModel.build(model_config("tiny"), llm, ["the budget review starts at nine"],
                             ctc_vocab_size=400)


def _lora_size(model, r: int) -> int:
    """r x (in + out) for every LoRA target linear of the LLM, counted before wrapping."""
    return sum(r * (m.in_features + m.out_features) for name, m in model.llm.named_modules()
               if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in LORA_TARGETS)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_trains_exactly_its_parts(base_model, name):
    counts = count_parameters(base_model)
    lora = _lora_size(base_model, r=4)
    expected = {
        "adaptor": counts["adaptor"],
        "encoder_adaptor": counts["encoder"] + counts["adaptor"],
        "llm_lora": lora,
        "full_lora": counts["encoder"] + counts["adaptor"] + lora,
        "ctc": counts["ctc"],
        "contextual": counts["encoder"] + counts["adaptor"] + lora,
    }[name]
    model = copy.deepcopy(base_model)
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
