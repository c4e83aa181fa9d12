"""ASR backends on real TTS speech with known text (the systems of multi-system pseudo-labels)."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest
import soxr

from funfactory.errors import FunfactoryError
from funfactory.eval.scoring import wer
from funfactory.asr.base import WordTimestampsUnsupported
from funfactory.asr.registry import BackendSpec, build_backend
from tests.label_audio import SENTENCES, TTS_RATE, speech


def clip16k(text: str) -> np.ndarray:
    audio = soxr.resample(speech(text), TTS_RATE, 16000).astype(np.float32)
    return np.concatenate([np.zeros(4000, np.float32), audio, np.zeros(4000, np.float32)])


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    import torch
    torch.set_num_threads(1)


def test_whisper_tiny_en_batched_and_word_timestamps():
    backend = build_backend(BackendSpec(kind="whisper-tiny-en"))
    clips = [clip16k(SENTENCES[0]), clip16k(SENTENCES[1])]
    batch = backend.transcribe_batch(clips, ["en", "en"])
    assert [t.language for t in batch] == ["en", "en"]
    assert wer(list(SENTENCES[:2]), [t.text for t in batch]).rate < 0.2
    timed = backend.transcribe(clips[1], "en", word_timestamps=True)
    assert timed.text == batch[1].text or wer([SENTENCES[1]], [timed.text]).rate < 0.2
    starts = [w.start for w in timed.words]
    assert len(timed.words) >= 8 and starts == sorted(starts)
    assert all(0.0 <= w.start <= w.end <= len(clips[1]) / 16000 + 0.05 for w in timed.words)
    assert timed.as_label()["words"][0][0].lower() == "please"


def test_pocketsphinx_is_english_and_aligns_words():
    backend = build_backend(BackendSpec(kind="pocketsphinx"))
    assert backend.covers("en") and not backend.covers("zh") and not backend.covers(None)
    result = backend.transcribe(clip16k(SENTENCES[2]), "en", word_timestamps=True)
    assert wer([SENTENCES[2]], [result.text]).rate < 0.5
    assert result.words and all(w.end > w.start for w in result.words)


def test_command_backend_runs_a_program_without_shell(tmp_path):
    program = tmp_path / "asr.py"
    program.write_text(textwrap.dedent("""
        import json, sys
        import soundfile as sf
        for path in sys.argv[1:]:
            info = sf.info(path)
            print(json.dumps({"path": path, "text": f"clip of {info.frames} frames",
                              "words": [["clip", 0.0, 0.1]]}))
    """))
    backend = build_backend(BackendSpec(kind="command", name="mine",
                                        command=[sys.executable, str(program)]))
    clips = [np.zeros(16000, np.float32), np.zeros(8000, np.float32)]
    out = backend.transcribe_batch(clips, word_timestamps=True)
    assert [t.text for t in out] == ["clip of 16000 frames", "clip of 8000 frames"]
    assert out[0].words[0].text == "clip"
    failing = build_backend(BackendSpec(kind="command", command=[sys.executable, "-c",
                                                                 "import sys; sys.exit(3)"]))
    with pytest.raises(FunfactoryError, match="exited with 3"):
        failing.transcribe(clips[0])
    silent = build_backend(BackendSpec(kind="command", command=[sys.executable, "-c", "pass"]))
    with pytest.raises(FunfactoryError, match="printed no line"):
        silent.transcribe(clips[0])
    with pytest.raises(FunfactoryError, match="argv"):
        build_backend(BackendSpec(kind="command", command=[]))


def test_unknown_kind_and_missing_model_name_the_fix():
    with pytest.raises(FunfactoryError, match="unknown ASR backend kind"):
        build_backend(BackendSpec(kind="whisper-huge"))
    with pytest.raises(FunfactoryError, match="needs model"):
        build_backend(BackendSpec(kind="transformers"))


@pytest.mark.slow
def test_whisper_base_assembles_once_in_cache_and_transcribes(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNFACTORY_CACHE", str(tmp_path))
    from funfactory.asr.whisper import whisper_base_dir
    folder = whisper_base_dir()
    assert folder.parent.parent == tmp_path and (folder / "model.bin").stat().st_size > 1e8
    stamp = (folder / "model.bin").stat().st_mtime_ns
    assert whisper_base_dir() == folder and (folder / "model.bin").stat().st_mtime_ns == stamp
    assert not list(folder.parent.glob(".*partial"))
    backend = build_backend(BackendSpec(kind="whisper-base"))
    out = backend.transcribe_batch([clip16k(SENTENCES[3]), clip16k(SENTENCES[4])], [None, "en"])
    assert out[0].language == "en"  # detected
    assert wer(list(SENTENCES[3:5]), [t.text for t in out]).rate < 0.2


@pytest.mark.slow
def test_transformers_backend_runs_a_local_random_whisper(tmp_path):
    """A tiny randomly initialised Whisper saved with a processor built offline from the
    Whisper base tokenizer: the backend loads it from the folder and transcribes a batch
    (the text is meaningless: the weights are random)."""
    import torch
    from transformers import (WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperProcessor,
                              WhisperTokenizerFast)

    from funfactory.asr.whisper import whisper_base_dir
    end = "<|endoftext|>"
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(whisper_base_dir() / "tokenizer.json"),
                                     unk_token=end, bos_token=end, eos_token=end, pad_token=end)
    config = WhisperConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_target_positions=64,
        decoder_start_token_id=tokenizer.convert_tokens_to_ids("<|startoftranscript|>"),
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config.max_new_tokens = 6
    model.save_pretrained(tmp_path)
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(), tokenizer=tokenizer) \
        .save_pretrained(tmp_path)
    backend = build_backend(BackendSpec(kind="transformers", model=str(tmp_path), name="mine"))
    out = backend.transcribe_batch([clip16k(SENTENCES[0]), np.zeros(16000, np.float32)])
    assert len(out) == 2 and all(isinstance(t.text, str) and t.text for t in out)
    with pytest.raises(WordTimestampsUnsupported):
        backend.transcribe(np.zeros(16000, np.float32), word_timestamps=True)
    assert json.dumps(out[0].as_label())


def test_pocketsphinx_scores_a_clip_the_same_whatever_it_decoded_before():
    """A resumed label job decodes its segments after other ones than the first run did: the
    decoder's stream state must not carry over from one clip to the next."""
    from funfactory.synth.tts import get_voice, resample

    voice = get_voice("espeak-en")
    before, clip = (resample(voice.synthesize(text), voice.sample_rate, 16000) for text in
                    ("The farmer checked the fences before the storm.",
                     "Please write your name at the top of the form."))
    fresh = build_backend(BackendSpec(kind="pocketsphinx")).load()
    used = build_backend(BackendSpec(kind="pocketsphinx")).load()
    used.transcribe(before, "en")
    first, second = fresh.transcribe(clip, "en"), used.transcribe(clip, "en")
    assert (first.text, first.extras) == (second.text, second.extras)


def test_an_evaluated_backend_decodes_on_every_core_and_a_label_worker_on_one(monkeypatch):
    import os

    import faster_whisper

    from funfactory.eval.systems import build_system

    threads = []

    class Recorded(faster_whisper.WhisperModel):  # the real model, its thread count noted
        def __init__(self, *args, cpu_threads=0, **kwargs):
            threads.append(cpu_threads)
            super().__init__(*args, cpu_threads=cpu_threads, **kwargs)

    monkeypatch.setattr(faster_whisper, "WhisperModel", Recorded)
    monkeypatch.delenv("FUNFACTORY_ASR_THREADS", raising=False)
    text = build_system("backend:whisper-tiny-en").transcribe([clip16k(SENTENCES[0])], [{}])[0]
    assert wer([SENTENCES[0]], [text]).rate < 0.3
    build_backend(BackendSpec(kind="whisper-tiny-en")).load()  # as a label job's worker does
    assert threads == [len(os.sched_getaffinity(0)), 1]
    monkeypatch.setenv("FUNFACTORY_ASR_THREADS", "3")  # the environment decides where it is set
    build_system("backend:whisper-tiny-en").backend.load()
    assert threads[-1] == 3
