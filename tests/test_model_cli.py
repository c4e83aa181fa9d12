"""`funfactory model ...` sub-commands, driven through their argparse registration."""

import argparse
import json

import pytest
import soundfile as sf

from funfactory.errors import FunfactoryError
from funfactory.model import cli
from funfactory.model.checkpoint import save_model
from tests.conftest_model import tiny_model


def run(argv):
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="area"))
    args = parser.parse_args(["model", *argv])
    return args.func(args)


def test_count_prints_parameters_per_part(capsys):
    assert run(["count", "--size", "nano"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert set(counts) == {"encoder", "adaptor", "ctc", "llm", "total"}
    assert 0.15e9 < counts["encoder"] < 0.25e9


def test_transcribe_offline_and_streaming_agree(tmp_path, speech_clips, capsys):
    model = tiny_model(texts=[t for t, _ in speech_clips], chunk_frames=12)
    save_model(model, tmp_path / "asr", copy_llm=False)
    wav = tmp_path / "a.wav"
    sf.write(wav, speech_clips[0][1], 16000)
    hotwords = tmp_path / "hotwords.txt"
    hotwords.write_text("Grafana Loki\n通义实验室\n", encoding="utf-8")
    common = [str(tmp_path / "asr"), str(wav), "--method", "ctc", "--hotwords", str(hotwords)]
    assert run(["transcribe", *common]) == 0
    offline = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert run(["transcribe", *common, "--stream"]) == 0
    streamed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(offline) == 1 and streamed[-1]["text"] == offline[0]["text"]
    assert any("partial" in line for line in streamed)

    slow = tmp_path / "b.wav"
    sf.write(slow, speech_clips[0][1], 8000)
    with pytest.raises(FunfactoryError, match="8000 Hz"):
        run(["transcribe", str(tmp_path / "asr"), str(slow)])
