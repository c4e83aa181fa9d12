"""`funfactory synth ...`: build the embedded default corpus, speak a sentence, list the voices.

    funfactory synth corpus --out DIR [--seed N] [--scale tiny|default] [--noise-dir DIR ...]
    funfactory synth tts --voice kokoro-alpha --text "我们明天三点半开会。" --out hello.wav [--16k]
    funfactory synth voices [--language zh]
    funfactory synth llm prepare|generate|serve|cache ...   (synth/llm/cli.py)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def register(subparsers) -> None:
    synth = subparsers.add_parser("synth", help="speech and text synthesis: default corpus, TTS voices, LLM backends")
    commands = synth.add_subparsers(dest="synth_command", metavar="COMMAND", required=True)

    corpus = commands.add_parser("corpus", help="build the embedded default corpus (deterministic per seed)")
    corpus.add_argument("--out", required=True, help="output folder (a rerun reuses finished files)")
    corpus.add_argument("--seed", type=int, default=0)
    corpus.add_argument("--scale", choices=("tiny", "default"), default="default")
    corpus.add_argument("--noise-dir", action="append", default=None, dest="noise_dirs",
                        help="folder holding the noise files when the Debian noise packages are not "
                             "installed (repeatable)")
    corpus.set_defaults(func=_corpus)

    tts = commands.add_parser("tts", help="synthesize one text with one voice to an audio file")
    tts.add_argument("--voice", required=True, help="a name from `funfactory synth voices`")
    tts.add_argument("--text", required=True)
    tts.add_argument("--out", required=True, help="output .wav, .flac or .ogg")
    tts.add_argument("--seed", type=int, default=0)
    tts.add_argument("--16k", action="store_true", dest="to_16k", help="resample to 16 kHz (default: native rate)")
    tts.set_defaults(func=_tts)

    voices = commands.add_parser("voices", help="list the TTS voices")
    voices.add_argument("--language", choices=("en", "zh", "zh-en"), default=None)
    voices.set_defaults(func=_voices)

    from funfactory.synth.llm.cli import register_llm
    register_llm(commands)


def _corpus(args: argparse.Namespace) -> int:
    import shutil

    from funfactory.synth.corpus import CorpusInfo, build_corpus, default_corpus
    started = time.perf_counter()
    if args.noise_dirs is None:
        # the default corpus is built once per machine (the pipelines that read it, such as the
        # hotword job's noise, find it there) and copied out
        shutil.copytree(default_corpus(args.scale, args.seed).root, args.out, dirs_exist_ok=True)
        info = CorpusInfo.load(Path(args.out))
    else:
        info = build_corpus(args.out, seed=args.seed, scale=args.scale, noise_dirs=args.noise_dirs)
    print(json.dumps({"root": str(info.root), "seed": info.seed, "scale": info.scale, "counts": info.counts,
                      "hours": info.hours, "seconds": round(time.perf_counter() - started, 1)},
                     ensure_ascii=False, indent=2))
    return 0


def _tts(args: argparse.Namespace) -> int:
    from funfactory.synth.audio_files import write_audio
    from funfactory.synth.tts import TARGET_SAMPLE_RATE, get_voice, resample_to_16k
    voice = get_voice(args.voice)
    audio = voice.synthesize(args.text, seed=args.seed)
    sample_rate = voice.sample_rate
    if args.to_16k:
        audio, sample_rate = resample_to_16k(audio, sample_rate), TARGET_SAMPLE_RATE
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_audio(out, audio, sample_rate)
    print(f"{out}: {audio.size / sample_rate:.2f} s at {sample_rate} Hz ({voice.name})")
    return 0


def _voices(args: argparse.Namespace) -> int:
    from funfactory.synth.tts import list_voices
    for spec in list_voices(args.language):
        print(f"{spec.name:18s} {spec.engine:10s} {','.join(spec.languages):12s} {spec.sample_rate} Hz")
    return 0
