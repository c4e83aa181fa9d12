"""The trainer runs of the experiments: `funfactory train sft` with configs that share everything
(model, seed, steps, learning rate, batch size, validation) but the data.

A pair is two `ctc_run` calls with different `streams` (and, for noise-robust training, online
noise on); `config_differences` is how the report and the tests check that nothing else differs.
A run whose `final/` exists is not trained again.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from funfactory.demo_model import write_config
from funfactory.demo_stages import cli
from funfactory.effects.plan import EffectsRun

LOG_EVERY = 20


def stream(name: str, shards: Path, weight: float = 1.0, cycle: bool = False) -> dict:
    return {"name": name, "shards": [str(shards)], "weight": weight, "cycle": cycle}


def model_setup(run: EffectsRun, stage: str, init: Path | None) -> dict:
    model = {"size": run.plan.model_size, "stage": stage, "ctc_vocab_size": 257}
    if init is not None:
        model["init_from"] = str(init)
    elif run.plan.model_size == "tiny":
        model["llm_path"] = str(tiny_llm(run))
    return model


def tiny_llm(run: EffectsRun) -> Path:
    folder = run.path("models", "tiny-llm")
    if not (folder / "config.json").is_file():
        cli(run, "model", "tiny-llm", folder)
    return folder


def _train(run: EffectsRun, name: str, stage: str, streams: list[dict], init: Path | None,
           steps: int, lr: float, batch_seconds: float, val_shards: Path,
           noise_manifest: Path | None) -> Path:
    final = run.path("runs", name, "final")
    if final.is_dir():
        return final
    config = write_config(run, name, stage, streams, model_setup(run, stage, init), steps, lr,
                          every=steps, batch_seconds=batch_seconds, val_shards=[str(val_shards)],
                          val_utterances=run.plan.test_utterances, log_every=LOG_EVERY)
    body = yaml.safe_load(config.read_text(encoding="utf-8"))
    body["data"]["augment"] = {"enabled": noise_manifest is not None,
                               "fraction": run.plan.online_noise_fraction,
                               "options": ({"noise_manifest": str(noise_manifest)}
                                           if noise_manifest is not None else {})}
    body["run"]["tensorboard"] = False
    config.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    cli(run, "train", "sft", "--config", config)
    return final


def ctc_run(run: EffectsRun, name: str, streams: list[dict], val_shards: Path,
            noise_manifest: Path | None = None) -> Path:
    """Stage 5 (`ctc`): the CTC head on the frozen encoder, from the same fresh model each time."""
    plan = run.plan
    return _train(run, name, "ctc", streams, None, plan.ctc_steps, plan.ctc_lr,
                  plan.ctc_batch_seconds, val_shards, noise_manifest)


def llm_run(run: EffectsRun, name: str, streams: list[dict], init: Path, val_shards: Path) -> Path:
    """`hypothesis_lora`: adaptor and LLM LoRA learn to write the transcript from the audio and
    the CTC hypothesis in the prompt (section 2), starting from a trained CTC head."""
    plan = run.plan
    return _train(run, name, "hypothesis_lora", streams, init, plan.llm_steps, plan.llm_lr,
                  plan.llm_batch_seconds, val_shards, None)


def config_differences(run: EffectsRun, a: str, b: str) -> dict[str, tuple]:
    """Dotted keys whose values differ between two runs' configs, its own folder excepted."""
    def flat(prefix: str, value) -> dict:
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                out.update(flat(f"{prefix}.{k}" if prefix else k, v))
            return out
        return {prefix: value}

    left, right = (flat("", yaml.safe_load(run.path("configs", f"{n}.yaml").read_text(
        encoding="utf-8"))) for n in (a, b))
    return {k: (left.get(k), right.get(k)) for k in sorted(set(left) | set(right))
            if k != "run.out_dir" and left.get(k) != right.get(k)}
