"""Streaming data (Fun-ASR report section 5.1, Table 3): training on chunked prefixes whose
labels hold only the words already heard.

Pair: the clean run of `noise.py`, against the same data plus the streaming pipeline's 720 ms
prefixes of a subset of the training utterances. Scored under chunked streaming decoding: every
720 ms prefix of each test utterance (the streaming pipeline's test prefixes) is decoded and its
partial result compared with the words fully heard by then. The `cpu` size's Whisper encoder
attends over the whole input, so each partial re-encodes the visible prefix, which is what the
streaming recogniser does for any full-attention encoder.
"""

from __future__ import annotations

from funfactory.effects import decoding, noise
from funfactory.effects.training import ctc_run, stream

SECTION = "5.1, Table 3"
SETS = noise.SETS + ("streaming-train", "streaming-test")


def runs(run, sets: dict, without: dict) -> dict:
    streams = [stream("tts", sets["train"]),
               stream("streaming", sets["streaming-train"], weight=run.plan.streaming_weight,
                      cycle=True)]
    return {"without": without["clean"],
            "with": ctc_run(run, "ctc-clean-streaming", streams, sets["test-clean"])}


def score(models: dict, sets: dict) -> dict:
    prefixes = decoding.read_set(sets["streaming-test"])
    out = {}
    for name, by_set in decoding.decode_ctc(models, {"prefixes": prefixes}).items():
        decoded = by_set["prefixes"]
        partial = [d for d in decoded if not d.meta["stream"]["final"]]
        final = [d for d in decoded if d.meta["stream"]["final"]]
        out[name] = {"streaming_wer": decoding.wer(decoded), "partial_wer": decoding.wer(partial),
                     "final_wer": decoding.wer(final), "examples": decoding.examples(partial)}
    base, treat = out["without"]["streaming_wer"], out["with"]["streaming_wer"]
    relative = (base - treat) / base if base else 0.0
    utterances = len({s.meta["stream"]["parent_key"] for s in prefixes})
    return {"experiment": "streaming data", "section": SECTION,
            "metric": "WER under chunked (720 ms) streaming decoding, every prefix",
            "baseline_name": "without streaming prefixes", "treatment_name": "with them",
            "baseline": base, "treatment": treat,
            "change": (f"{100 * relative:.1f} % relative lower" if relative >= 0
                       else f"{-100 * relative:.1f} % relative higher"),
            "target": "lower", "met": relative > 0,
            "utterances": {"test utterances": utterances, "prefixes decoded": len(prefixes)},
            "detail": out}
