"""`funfactory model ...`: build the tiny test LLM, count parameters, transcribe audio files.

    funfactory model tiny-llm DIR                      # random tiny Qwen3 + the Qwen tokenizer
    funfactory model count --size nano                 # parameters per part, from the config
    funfactory model transcribe MODEL_DIR a.wav b.flac [--method ctc|llm] [--hotwords FILE]
                                                       [--stream] [--chunk-ms 720]
"""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("model", help="the ASR model: tiny LLM, sizes, transcription")
    sub = parser.add_subparsers(dest="model_command", required=True)

    tiny = sub.add_parser("tiny-llm", help="write a random tiny Qwen3 folder with the Qwen tokenizer")
    tiny.add_argument("out_dir")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=_tiny_llm)

    count = sub.add_parser("count", help="parameters per part of a model size (no memory used)")
    count.add_argument("--size", default="nano", choices=["tiny", "cpu", "nano", "full"])
    count.set_defaults(func=_count)

    run = sub.add_parser("transcribe", help="decode 16 kHz mono audio files with a saved model")
    run.add_argument("model_dir")
    run.add_argument("audio", nargs="+")
    run.add_argument("--method", default="llm", choices=["ctc", "llm"])
    run.add_argument("--hotwords", help="text file, one hotword per line")
    run.add_argument("--stream", action="store_true", help="decode through the streaming path")
    run.add_argument("--chunk-ms", type=float, default=720.0)
    run.add_argument("--max-new-tokens", type=int, default=128)
    run.set_defaults(func=_transcribe)


def _tiny_llm(args: argparse.Namespace) -> int:
    from funfactory.model.tiny_llm import build_tiny_llm

    print(build_tiny_llm(args.out_dir, seed=args.seed))
    return 0


def _count(args: argparse.Namespace) -> int:
    from funfactory.model.asr import count_parameters, meta_model
    from funfactory.model.configs import model_config

    print(json.dumps(count_parameters(meta_model(model_config(args.size))), indent=2))
    return 0


def _read_audio(path: str):
    import numpy as np
    import soundfile as sf

    from funfactory.errors import FunfactoryError

    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    if rate != 16000:
        raise FunfactoryError(f"{path} is at {rate} Hz: resample it to 16 kHz mono first")
    return np.ascontiguousarray(audio.mean(axis=1))


def _transcribe(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from funfactory.model.checkpoint import load_model
    from funfactory.model.decode import DecodeOptions, transcribe
    from funfactory.model.hotword import HotwordIndex, ctc_units
    from funfactory.model.streaming import StreamingRecognizer

    model = load_model(args.model_dir)
    index = None
    if args.hotwords:
        lines = Path(args.hotwords).read_text(encoding="utf-8").splitlines()
        index = HotwordIndex([h for h in lines if h.strip()], ctc_units(model))
    options = DecodeOptions(method=args.method, hotwords=index, max_new_tokens=args.max_new_tokens)
    with torch.no_grad():
        for path in args.audio:
            audio = _read_audio(path)
            if args.stream:
                recognizer = StreamingRecognizer(model, chunk_ms=args.chunk_ms, options=options)
                step = int(16000 * args.chunk_ms / 1000)
                for start in range(0, len(audio), step):
                    for partial in recognizer.accept_waveform(audio[start:start + step]):
                        print(json.dumps({"audio": path, "partial": partial.text,
                                          "seconds": partial.audio_seconds}, ensure_ascii=False))
                result = recognizer.finish()
            else:
                result = transcribe(model, [audio], options)[0]
            print(json.dumps({"audio": path, "text": result.text, "ctc": result.ctc.text,
                              "hotwords": result.hotwords}, ensure_ascii=False))
    return 0
