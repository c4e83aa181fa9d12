"""Noise-robust training (Fun-ASR report section 5.2, Table 4), in miniature.

Pair: the CTC head trained on clean TTS speech only, against the same run whose data adds the
augment pipeline's noisy copies (real noise from the train split of the project's noise
collections, SNR ~ N(10, 5) dB) and online noise on a share of every batch. Scored on a noisy
test set whose noise comes from the test split, which training never heard, and on the clean
test set (robustness should not cost clean accuracy).
"""

from __future__ import annotations

from funfactory.effects import decoding
from funfactory.effects.training import ctc_run, stream

SECTION = "5.2, Table 4"
SETS = ("test-clean", "augment-train", "noisy-test")


def runs(run, sets: dict, manifest) -> dict:
    val = sets["test-clean"]
    return {
        "clean": ctc_run(run, "ctc-clean", [stream("tts", sets["train"])], val),
        "noisy": ctc_run(run, "ctc-noisy", [stream("tts", sets["train"]),
                                            stream("noisy", sets["augment-train"])], val,
                         noise_manifest=manifest),
    }


def score(models: dict, sets: dict) -> dict:
    noisy = decoding.read_set(sets["noisy-test"], lambda m: not decoding.is_noise_only(m))
    clean = decoding.read_set(sets["test-clean"])
    out = {name: {"noisy_test_wer": decoding.wer(d["noisy"]), "clean_test_wer": decoding.wer(d["clean"]),
                  "examples": decoding.examples(d["noisy"])}
           for name, d in decoding.decode_ctc(models, {"noisy": noisy, "clean": clean}).items()}
    base, treat = out["clean"]["noisy_test_wer"], out["noisy"]["noisy_test_wer"]
    relative = (base - treat) / base if base else 0.0
    return {"experiment": "noise-robust training", "section": SECTION,
            "metric": "WER on noisy test (unseen noise sources)",
            "baseline_name": "clean speech only", "treatment_name": "+ augment shards + online noise",
            "baseline": base, "treatment": treat,
            "change": f"{100 * relative:.1f} % relative lower" if relative >= 0
            else f"{-100 * relative:.1f} % relative higher",
            "target": ">= 10 % relative lower", "met": relative >= 0.10,
            "utterances": {"noisy test": len(noisy), "clean test": len(clean)},
            "detail": out}
