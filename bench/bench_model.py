"""Model speed and size (Fun-ASR section 4): tiny-model RTFs on CPU, hotword retrieval latency, parameter counts.

- Encoder forward RTF (frontend + encoder + adaptor, batch of 8 x 5 s of TTS speech), beside the
  Kaldi fbank alone from kaldi-native-fbank (the floor any frontend pays).
- Decoding RTF: CTC greedy, LLM greedy (32 new tokens) and streaming over 720 ms chunks, each
  beside the encoder forward of the same audio.
- Hotword retrieval latency per 10 s hypothesis for 10, 1,000 and 100,000 hotwords (Chinese terms
  in pinyin units and English terms in word pieces), beside a brute-force scan of every hotword.
- Parameter counts of `nano` and `full` from their configs on the meta device (no memory), beside
  the report's 0.2B + 0.6B and 0.7B + 7B.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from bench.common import best_of, row, speech_clips
from funfactory.model.asr import FunASRModel, count_parameters, meta_model
from funfactory.model.configs import model_config
from funfactory.model.decode import DecodeOptions, transcribe, waveform_batch
from funfactory.model.hotword import HotwordIndex, tokenizer_word_pieces
from funfactory.model.llm import load_llm
from funfactory.model.streaming import StreamingRecognizer
from funfactory.model.tiny_llm import cached_tiny_llm

CLIPS, SECONDS = 8, 5.0
HAN = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理府研"


def _knf_fbank(clips: list[np.ndarray]) -> None:
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = 80
    for audio in clips:
        fbank = knf.OnlineFbank(opts)
        fbank.accept_waveform(16000, audio * 32768.0)
        fbank.input_finished()
        np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])


def speed_rows(model: FunASRModel, clips: list[np.ndarray]) -> list[dict]:
    audio_seconds = sum(len(c) for c in clips) / 16000
    waveforms, lengths = waveform_batch(clips)

    def encode():
        with torch.no_grad():
            model.encode_audio(waveforms, lengths)

    fbank_rtf = best_of(lambda: _knf_fbank(clips)) / audio_seconds
    encoder_rtf = best_of(encode) / audio_seconds
    rows = [row("model", "tiny encoder forward RTF (fbank+enc+adaptor)", encoder_rtf,
                "kaldi-native-fbank alone RTF", fbank_rtf)]
    ctc_rtf = best_of(lambda: transcribe(model, clips, DecodeOptions(method="ctc"))) / audio_seconds
    rows.append(row("model", "tiny CTC greedy decode RTF", ctc_rtf, "tiny encoder forward RTF",
                    encoder_rtf))
    llm_options = DecodeOptions(method="llm", max_new_tokens=32)
    llm_rtf = best_of(lambda: transcribe(model, clips, llm_options), repeats=1) / audio_seconds
    rows.append(row("model", "tiny LLM greedy decode RTF (32 tokens)", llm_rtf,
                    "tiny encoder forward RTF", encoder_rtf))

    def stream_all():
        for clip in clips:
            recognizer = StreamingRecognizer(model, chunk_ms=720, options=DecodeOptions(method="ctc"))
            for start in range(0, len(clip), 11520):  # 720 ms of samples at a time
                recognizer.accept_waveform(clip[start:start + 11520])
            recognizer.finish()

    stream_rtf = best_of(stream_all, repeats=1) / audio_seconds
    rows.append(row("model", "tiny streaming CTC RTF (720 ms chunks, cache)", stream_rtf,
                    "tiny CTC greedy decode RTF (offline)", ctc_rtf))
    return rows


def _hotwords(count: int, word_pieces, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = []
    for i in range(count):
        if i % 5 == 4:  # one in five is English: two made-up words of 4-9 letters
            words.append(" ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz")
                                          for _ in range(rng.randint(4, 9))) for _ in range(2)))
        else:
            words.append("".join(rng.choice(HAN) for _ in range(rng.randint(2, 5))))
    return words


def hotword_rows(word_pieces) -> list[dict]:
    rng = random.Random(1)
    hypothesis = "".join(rng.choice(HAN) for _ in range(45)) + "阿里八八通义实验室"
    rows = []
    for count in (10, 1_000, 100_000):
        index = HotwordIndex(_hotwords(count - 2, word_pieces) + ["阿里巴巴", "通义实验室"], word_pieces)
        found = {m.hotword for m in index.retrieve(hypothesis, top_k=10)}
        if not {"阿里巴巴", "通义实验室"} <= found:
            raise RuntimeError(f"hotword bench: planted hotwords not retrieved from {count}: {found}")
        indexed = best_of(lambda: index.retrieve(hypothesis, top_k=10), repeats=5) * 1000
        brute = best_of(lambda: index.retrieve_brute_force(hypothesis, top_k=10),
                        repeats=1 if count > 10_000 else 3) * 1000
        rows.append(row("model", f"hotword retrieval, {count:,} hotwords", indexed,
                        "brute-force scan of every hotword", brute, unit="ms"))
    return rows


def size_rows() -> list[dict]:
    rows = []
    for size, encoder_anchor, llm_anchor in (("nano", 0.2e9, 0.6e9), ("full", 0.7e9, 7e9)):
        model = meta_model(model_config(size))
        counts = count_parameters(model)
        embeddings = sum(p.numel() for n, p in model.llm.named_parameters()
                         if "embed_tokens" in n or "lm_head" in n)
        rows.append(row("model", f"{size} encoder parameters (M)", counts["encoder"] / 1e6,
                        "report encoder size (M)", encoder_anchor / 1e6))
        rows.append(row("model", f"{size} adaptor + CTC parameters (M)",
                        (counts["adaptor"] + counts["ctc"]) / 1e6, "report encoder size (M)",
                        encoder_anchor / 1e6))
        rows.append(row("model", f"{size} LLM parameters (M)", counts["llm"] / 1e6,
                        "report LLM size (M)", llm_anchor / 1e6))
        rows.append(row("model", f"{size} LLM parameters without embeddings (M)",
                        (counts["llm"] - embeddings) / 1e6, "report LLM size (M)", llm_anchor / 1e6))
    return rows


def main() -> list[dict]:
    torch.set_num_threads(1)
    llm_dir = cached_tiny_llm()
    llm, tokenizer = load_llm(llm_dir)
    clips = speech_clips(CLIPS, SECONDS)
    config = model_config("tiny", llm_path=str(llm_dir))
    config.encoder.chunk_frames = 12
    from funfactory.model.ctc import CTCVocab

    model = FunASRModel(config, llm, tokenizer, CTCVocab.build(tokenizer, ["hello world"])).eval()
    rows = speed_rows(model, clips)
    rows += hotword_rows(tokenizer_word_pieces(tokenizer))
    rows += size_rows()
    return rows


if __name__ == "__main__":
    main()
