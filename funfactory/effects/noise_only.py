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
    from funfactory.model.checkpoint import load_model
    from funfactory.model.decode import DecodeOptions

    noise = decoding.read_set(sets["noisy-test"], decoding.is_noise_only)
    silent = decoding.read_set(sets["silent-test"])
    empty = noise + silent
    clean = decoding.read_set(sets["test-clean"])
    out = {}
    for name, folder in models.items():
        model = load_model(folder)
        on_empty = decoding.decode_samples(model, empty, DecodeOptions(method="ctc"))
        on_clean = decoding.decode_samples(model, clean, DecodeOptions(method="ctc"))
        out[name] = {"hallucinated_words_per_input": decoding.hallucinated_words(on_empty),
                     "inputs_with_words": sum(bool(d.transcript.text.strip()) for d in on_empty),
                     "clean_test_wer": decoding.wer(on_clean),
                     "examples": [d.transcript.text for d in on_empty if d.transcript.text][:3]}
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
