"""The supervised fine-tuning stages of Fun-ASR section 4.2, and contextual SFT (section 4.3).

Each stage names the model parts that train, whether the LLM is wrapped with LoRA (peft), and the
weights of the two losses:

| stage | name | trains | LLM | losses |
| --- | --- | --- | --- | --- |
| 1 | adaptor | adaptor | frozen | LLM CE |
| 2 | encoder_adaptor | encoder + adaptor | frozen | LLM CE |
| 3 | llm_lora | LLM LoRA weights | LoRA | LLM CE |
| 4 | full_lora | encoder + adaptor + LLM LoRA | LoRA | LLM CE |
| 5 | ctc | CTC head | frozen | CTC |
| - | contextual | encoder + adaptor + LLM LoRA, on contextual data mixed with hotword and streaming samples | LoRA | LLM CE |
| - | hypothesis_lora | adaptor + LLM LoRA, encoder and CTC head frozen | LoRA | LLM CE |

Everything not named is frozen (`requires_grad=False`), so the optimiser only ever sees the
stage's parameters. Stages 1-4 leave the CTC head alone (its loss weight is 0); stage 5 trains it
on the frozen encoder, as the report does, so its greedy hypothesis can feed hotword retrieval.
A model whose encoder is pretrained and frozen (the `cpu` size's Whisper encoder) can run stage 5
first and then `hypothesis_lora`, which teaches the adaptor and the LLM to decode from the audio
and the CTC hypothesis in the prompt (section 2, Figure 2).
"""

from __future__ import annotations

from dataclasses import dataclass

from funfactory.errors import FunfactoryError


@dataclass(frozen=True)
class Stage:
    name: str
    number: int  # section 4.2's numbering; 0 for contextual SFT (section 4.3)
    trainable: tuple[str, ...]
    lora: bool
    ctc_weight: float
    llm_weight: float


STAGES = {s.name: s for s in (
    Stage("adaptor", 1, ("adaptor",), False, 0.0, 1.0),
    Stage("encoder_adaptor", 2, ("encoder", "adaptor"), False, 0.0, 1.0),
    Stage("llm_lora", 3, ("llm",), True, 0.0, 1.0),
    Stage("full_lora", 4, ("encoder", "adaptor", "llm"), True, 0.0, 1.0),
    Stage("ctc", 5, ("ctc",), False, 1.0, 0.0),
    Stage("contextual", 0, ("encoder", "adaptor", "llm"), True, 0.0, 1.0),
    Stage("hypothesis_lora", 0, ("adaptor", "llm"), True, 0.0, 1.0),
)}


def get_stage(name: str | int) -> Stage:
    """A stage by name ("adaptor", ...) or by its section 4.2 number (1-5)."""
    key = str(name)
    if key.isdigit():
        for stage in STAGES.values():
            if stage.number == int(key) and stage.number > 0:
                return stage
    if key in STAGES:
        return STAGES[key]
    raise FunfactoryError(f"unknown training stage {name!r}; stages are {sorted(STAGES)} "
                          "or the numbers 1-5 of section 4.2")


def apply_stage(model, stage: Stage, lora_r: int = 8, lora_alpha: int = 16,
                lora_dropout: float = 0.0) -> dict[str, int]:
    """Freeze `model` (a FunASRModel) for `stage`, adding LoRA first when the stage needs it.

    Returns {"trainable": ..., "frozen": ..., "<part>": trainable count per part}.
    """
    from funfactory.model.asr import PARTS, add_llm_lora, is_lora, set_trainable

    if stage.lora and not is_lora(model):
        add_llm_lora(model, r=lora_r, alpha=lora_alpha, dropout=lora_dropout)
    model.config.ctc_weight = stage.ctc_weight
    model.config.llm_weight = stage.llm_weight
    set_trainable(model, stage.trainable)
    summary = {part: sum(p.numel() for p in getattr(model, part).parameters() if p.requires_grad)
               for part in PARTS}
    summary["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    summary["frozen"] = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return summary
