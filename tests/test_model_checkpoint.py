"""Save/load round trip, encoder initialisation (from an LLM and from a checkpoint), parameter
counts, freezing and LoRA."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from funfactory.errors import MissingAssetError
from funfactory.model.asr import add_llm_lora, count_parameters, meta_model, set_trainable
from funfactory.model.checkpoint import load_encoder_weights, load_model, save_model
from funfactory.model.configs import model_config
from funfactory.model.decode import DecodeOptions, transcribe, waveform_batch
from funfactory.model.encoder import init_from_llm
from funfactory.model.lora import is_peft, lora_merged
from tests.conftest_model import tiny_llm_dir, tiny_model


def _batch(speech_clips):
    texts = [t for t, _ in speech_clips[:2]]
    audio = [a for _, a in speech_clips[:2]]
    waveforms, lengths = waveform_batch(audio)
    return {"waveforms": waveforms, "lengths": lengths, "texts": texts}, audio


@pytest.mark.parametrize("copy_llm", [True, False])
def test_save_load_round_trip_gives_identical_outputs(tmp_path, speech_clips, copy_llm):
    model = tiny_model(texts=[t for t, _ in speech_clips], chunk_frames=12, downsample=2)
    with torch.no_grad():  # make the CMVN statistics non-trivial so they must be saved
        model.frontend.cmvn.mean.normal_()
    batch, audio = _batch(speech_clips)
    folder = save_model(model, tmp_path / "asr", copy_llm=copy_llm)
    loaded = load_model(folder)
    assert dataclasses.replace(loaded.config, llm_path=None) == \
        dataclasses.replace(model.config, llm_path=None)
    with torch.no_grad():
        for a, b in [(model.encode_audio(batch["waveforms"], batch["lengths"]),
                      loaded.encode_audio(batch["waveforms"], batch["lengths"]))]:
            assert torch.equal(a.encoded, b.encoded) and torch.equal(a.audio_embeds, b.audio_embeds)
            assert torch.equal(a.ctc_log_probs, b.ctc_log_probs)
        assert torch.equal(model(batch)["loss"], loaded(batch)["loss"])
    options = DecodeOptions(method="llm", max_new_tokens=6)
    assert [t.text for t in transcribe(model, audio, options)] == \
           [t.text for t in transcribe(loaded, audio, options)]
    assert loaded.ctc_vocab.llm_ids == model.ctc_vocab.llm_ids
    counts = json.loads((folder / "parameter_counts.json").read_text())
    assert counts == count_parameters(model)
    assert (folder / "llm" / "config.json").is_file() == copy_llm


def test_load_model_names_what_is_missing(tmp_path):
    with pytest.raises(MissingAssetError, match="config.json"):
        load_model(tmp_path)


def test_encoder_initialises_from_llm_layers_where_shapes_match():
    model = tiny_model()
    llm_state = load_file(str(tiny_llm_dir() / "model.safetensors"))
    before = model.encoder.input_proj.weight.clone()
    report = init_from_llm(model.encoder, tiny_llm_dir(), num_layers=4)
    # the tiny LLM has 2 layers with the tiny encoder's shapes: those copy, layers 2-3 do not exist
    assert len(report["copied"]) == 2 * 11 and all(".0." in n or ".1." in n for n in report["copied"])
    assert all(".2." in n or ".3." in n for n in report["skipped"])
    for name in ("self_attn.q_proj.weight", "mlp.down_proj.weight", "self_attn.k_norm.weight"):
        assert torch.equal(model.encoder.stack.layers[1].get_parameter(name),
                           llm_state[f"model.layers.1.{name}"])
    assert torch.equal(model.encoder.input_proj.weight, before)

    wide = model_config("tiny")
    wide.encoder.d_model = 144
    from funfactory.model.encoder import AudioEncoder

    mismatched = init_from_llm(AudioEncoder(wide.encoder, 560), tiny_llm_dir())
    assert all("norm" in n for n in mismatched["copied"])  # only the per-head q/k norms fit
    assert any("q_proj" in n for n in mismatched["skipped"])


def test_encoder_initialises_from_its_own_checkpoint(tmp_path):
    source = tiny_model(seed=1)
    save_model(source, tmp_path / "source", copy_llm=False)
    target = tiny_model(seed=2)
    assert not torch.equal(target.encoder.input_proj.weight, source.encoder.input_proj.weight)
    names = load_encoder_weights(target, tmp_path / "source")
    assert "input_proj.weight" in names
    for (name, a), (_, b) in zip(source.encoder.state_dict().items(), target.encoder.state_dict().items()):
        assert torch.equal(a, b), name


def test_parameter_counts_of_nano_and_full_without_allocating():
    nano = meta_model(model_config("nano"))
    full = meta_model(model_config("full"))
    assert all(p.is_meta for p in full.parameters())
    n, f = count_parameters(nano), count_parameters(full)
    assert 0.15e9 < n["encoder"] < 0.25e9 and 0.55e9 < n["llm"] < 0.65e9
    assert 0.6e9 < f["encoder"] < 0.8e9 and 6.5e9 < f["llm"] < 8.5e9
    assert n["total"] == sum(n[p] for p in ("encoder", "adaptor", "ctc", "llm"))


def test_set_trainable_and_lora_limit_gradients_to_the_chosen_parts(speech_clips):
    model = tiny_model(texts=[t for t, _ in speech_clips]).train()
    batch, _ = _batch(speech_clips)
    names = set_trainable(model, ["adaptor"])
    assert names and all(n.startswith("adaptor.") for n in names)
    model(batch)["loss"].backward()
    for part in ("encoder", "ctc", "llm"):
        assert all(p.grad is None for p in getattr(model, part).parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.adaptor.parameters())

    add_llm_lora(model, r=4)
    model.zero_grad(set_to_none=True)
    names = set_trainable(model, ["llm", "ctc"])
    llm_names = [n for n in names if n.startswith("llm.")]
    assert llm_names and all("lora_" in n for n in llm_names)
    loss = model(batch)["loss"]
    loss.backward()
    base = [p for n, p in model.llm.named_parameters() if "lora_" not in n]
    assert all(p.grad is None for p in base)
    assert any(p.grad is not None for n, p in model.llm.named_parameters() if "lora_B" in n)
    with pytest.raises(Exception, match="unknown model part"):
        set_trainable(model, ["decoder"])


def test_lora_model_saves_merged_and_reloads(tmp_path, speech_clips):
    model = tiny_model(texts=[t for t, _ in speech_clips])
    add_llm_lora(model, r=4)
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    batch, _ = _batch(speech_clips)
    with torch.no_grad():
        expected = model(batch)["llm_loss"]
    loaded = load_model(save_model(model, tmp_path / "lora"))
    with torch.no_grad():
        assert np.isclose(float(loaded(batch)["llm_loss"]), float(expected), atol=1e-4)


def test_lora_policy_keeps_learning_after_a_checkpoint(tmp_path, speech_clips):
    """Saving merges the adapters on the side: the live model keeps its LoRA layers, they still
    get gradients, an optimiser step still changes them and the model's output with them."""
    model = tiny_model(texts=[t for t, _ in speech_clips]).train()
    add_llm_lora(model, r=4)
    names = set_trainable(model, ["llm"])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch, _ = _batch(speech_clips)
    for step in range(2):
        model(batch)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        save_model(model, tmp_path / f"step-{step}")
    assert [n for n, p in model.named_parameters() if p.requires_grad] == names
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert lora and all(p.requires_grad for p in lora.values())
    before = {n: p.detach().clone() for n, p in lora.items()}
    with torch.no_grad():
        loss_before = float(model(batch)["llm_loss"])
    model(batch)["loss"].backward()
    assert all(p.grad is not None for n, p in lora.items() if "lora_A" in n)
    assert any(float(p.grad.abs().sum()) > 0 for p in lora.values())
    optimizer.step()
    assert any(not torch.equal(p, before[n]) for n, p in lora.items())
    with torch.no_grad():
        assert float(model(batch)["llm_loss"]) < loss_before
    # each checkpoint is the live model at its step, merged
    with torch.no_grad():
        saved = load_model(tmp_path / "step-1")
        assert np.isclose(float(saved(batch)["llm_loss"]), loss_before, atol=1e-4)


def test_decoding_through_the_merged_copy_equals_decoding_through_the_adapters(speech_clips):
    model = tiny_model(texts=[t for t, _ in speech_clips]).eval()
    add_llm_lora(model, r=4)
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    peft_llm = model.llm
    adapters = {n: p.detach().clone() for n, p in peft_llm.named_parameters() if "lora_" in n}
    audio = [a for _, a in speech_clips[:3]]
    options = DecodeOptions(max_new_tokens=6, max_tokens_per_second=None, precision="fp32")
    with torch.no_grad():
        through_adapters = [t.text for t in transcribe(model, audio, options)]
        rng = torch.get_rng_state()
        with lora_merged(model):
            assert model.llm is not peft_llm and not is_peft(model.llm)
            merged = [t.text for t in transcribe(model, audio, options)]
    assert merged == through_adapters and any(merged)
    # validating through the copy leaves the training run's random stream where it was
    assert torch.equal(torch.get_rng_state(), rng)
    assert model.llm is peft_llm
    assert all(torch.equal(p, adapters[n]) for n, p in peft_llm.named_parameters() if "lora_" in n)
    # the adapters matter here: decoding without them reads differently
    with torch.no_grad(), peft_llm.disable_adapter():
        assert [t.text for t in transcribe(model, audio, options)] != through_adapters


def test_decoding_under_bf16_autocast_casts_the_merged_copy_once_per_block(speech_clips):
    from tests.conftest_model import weight_casts_under_bf16

    model = tiny_model(texts=[t for t, _ in speech_clips]).eval()
    add_llm_lora(model, r=4)
    ids = torch.tensor([[1, 2, 3, 4]])

    def two_passes():
        model.llm(input_ids=ids)
        model.llm(input_ids=ids)

    with torch.no_grad(), lora_merged(model):
        linears = sum(isinstance(m, torch.nn.Linear) for m in model.llm.modules())
        assert 0 < weight_casts_under_bf16(model.llm, two_passes) <= linears
        model.llm.requires_grad_(False)  # the failure this guards against
        assert weight_casts_under_bf16(model.llm, two_passes) >= 2 * linears
