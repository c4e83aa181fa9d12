"""Noise-only samples (Fun-ASR report section 5.6): audio with no speech and an empty label,
which teach the model to write nothing where nothing is said.

Pair: the noise-robust run of `noise.py` (clean speech, noisy copies, online noise), against the
same data plus a stream of the augment pipeline's noise-only samples (train noise split, speech
checked absent by silero-vad). Scored as words written per input on the noise-only samples of
the noisy test set (test noise split) and on silent inputs (digital silence and faint dither),
and as clean-test WER (the samples should not make the model drop real words).
"""

from __future__ import annotations

from funfactory.effects import decoding, noise
from funfactory.effects.training import ctc_run, stream

SECTION = "5.6"
SETS = noise.SETS + ("noise-only-train", "silent-test")


def runs(run, sets: dict, manifest, without: dict) -> dict:
    streams = [stream("tts", sets["train"]), stream("noisy", sets["augment-train"]),
               stream("noise_only", sets["noise-only-train"], weight=run.plan.noise_only_weight,
                      cycle=True)]
    return {"without": without["noisy"],
            "with": ctc_run(run, "ctc-noisy-noiseonly", streams, sets["test-clean"],
                            noise_manifest=manifest)}


def score(models: dict, sets: dict) -> dict:
    noise = decoding.read_set(sets["noisy-test"], decoding.is_noise_only)
    silent = decoding.read_set(sets["silent-test"])
    clean = decoding.read_set(sets["test-clean"])
    out = {}
    for name, d in decoding.decode_ctc(models, {"empty": noise + silent, "clean": clean}).items():
        out[name] = {"hallucinated_words_per_input": decoding.hallucinated_words(d["empty"]),
                     "inputs_with_words": sum(bool(e.transcript.text.strip()) for e in d["empty"]),
                     "clean_test_wer": decoding.wer(d["clean"]),
                     "examples": [e.transcript.text for e in d["empty"] if e.transcript.text][:3]}
    base, treat = (out[n]["hallucinated_words_per_input"] for n in ("without", "with"))
    relative = (base - treat) / base if base else 0.0
    return {"experiment": "noise-only samples", "section": SECTION,
            "metric": "hallucinated words per noise-only or silent input",
            "baseline_name": "without noise-only samples", "treatment_name": "with them",
            "baseline": base, "treatment": treat,
            "change": ("no hallucinated words without them either" if not base else
                       f"{100 * relative:.1f} % fewer" if relative >= 0
                       else f"{-100 * relative:.1f} % more"),
            "target": ">= 50 % fewer", "met": relative >= 0.5,
            "utterances": {"noise-only test (test noise)": len(noise), "silent inputs": len(silent),
                           "clean test": len(clean)},
            "detail": out}
