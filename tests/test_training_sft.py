"""A short CPU run through the SFT stages: the tiny model's validation CER falls (slow).

Training data: seven TTS sentences. Validation: the same sentences spoken again with other
sampling seeds of the voice (held-out audio, seen text) - on a CPU in minutes the tiny model can
learn to map new renditions to known text, not to transcribe unseen sentences.
"""

from __future__ import annotations

import numpy as np
import pytest
import soxr
import torch

from funfactory.training.runner import run
from funfactory.training.sft import SFTTask
from funfactory.training.trainer import read_metrics
from tests.conftest import SENTENCES
from funfactory.model.tiny_llm import cached_tiny_llm
from tests.conftest_training import sft_config, write_speech_shards


def _renditions(seed0: int) -> list[tuple[str, np.ndarray]]:
    from hibari.tts import Hibari

    voice = Hibari(threads=1)
    out = []
    for i, text in enumerate(SENTENCES):
        audio = soxr.resample(np.asarray(voice(text, seed=seed0 + i), dtype=np.float32),
                              voice.sample_rate, 16000)
        out.append((text, np.round(np.clip(audio, -1, 1) * 32767).astype(np.float32) / 32768))
    return out


@pytest.mark.slow
def test_validation_cer_falls_through_the_stages(tmp_path, request):
    torch.set_num_threads(1)
    write_speech_shards(tmp_path / "train", _renditions(0), 7, per_shard=7, dataset="tr")
    write_speech_shards(tmp_path / "val", _renditions(100), 7, per_shard=7, dataset="va",
                        split="test")
    llm = cached_tiny_llm()

    def config(stage: str, steps: int, init_from=None):
        c = sft_config(str(tmp_path / "train"), tmp_path / stage, llm, stage, max_steps=steps,
                       val_every=steps, val_shards=[str(tmp_path / "val")], log_every=5)
        if init_from is not None:
            c.model.init_from, c.model.llm_path = str(init_from), None
        return c

    fresh = SFTTask(config("encoder_adaptor", 1))
    before = fresh.validate(fresh.model.eval())["val_cer"]
    del fresh

    run("sft", config("encoder_adaptor", 40))
    after_2 = read_metrics(tmp_path / "encoder_adaptor")[-1]["val_cer"]
    run("sft", config("full_lora", 40, tmp_path / "encoder_adaptor" / "final"))
    after_4 = read_metrics(tmp_path / "full_lora")[-1]["val_cer"]
    run("sft", config("ctc", 30, tmp_path / "full_lora" / "final"))
    ctc = [m["ctc_loss"] for m in read_metrics(tmp_path / "ctc") if "ctc_loss" in m]

    assert before >= 0.9, before
    assert after_4 < min(before, after_2) - 0.3, (before, after_2, after_4)
    assert ctc[-1] < ctc[0], "stage 5 trains the CTC head on the frozen encoder"
