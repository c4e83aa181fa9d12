"""Hotwords (Fun-ASR report section 5.5, Table 6): retrieved hotword candidates in the prompt.

One model, two decodings. The `hypothesis_lora` run (adaptor and LLM LoRA over a trained CTC
head) learns from the TTS training speech plus the hotword pipeline's samples over the training
sentences of the hotword pool (`effects.hotword_speech`: names, places, companies, products and
rare terms), whose prompts list each utterance's mined hotwords among distractors. On the hotword
test set (the pool's test sentences, whose hotwords training never heard, mined by the same
pipeline), the pair is: candidates retrieved from the test set's whole hotword vocabulary (every
list's hotwords and distractors) by edit distance against the CTC hypothesis, in the CTC head's
own units (letters: `model.hotword.ctc_units`), and put in the prompt, or no candidates. Both
prompts carry the CTC hypothesis. Scored by hotword recall and accuracy (eval/hotword_metrics.py) on each utterance's
true hotwords, and WER.
"""

from __future__ import annotations

from funfactory.effects import decoding, noise_only
from funfactory.effects.training import llm_run, stream

SECTION = "5.5, Table 6"
SETS = noise_only.SETS + ("hotword-train", "hotword-test")


def train(run, sets: dict, ctc_model) -> object:
    streams = [stream("tts", sets["train"]),
               stream("hotword", sets["hotword-train"], weight=run.plan.hotword_weight, cycle=True)]
    return llm_run(run, "llm-hypothesis", streams, ctc_model, sets["test-clean"])


def vocabulary(samples: list) -> list[str]:
    return sorted({h for s in samples for h in s.meta["prompt"]["hotwords"]})


def score(run, folder, sets: dict) -> dict:
    from funfactory.eval.hotword_metrics import hotword_metrics
    from funfactory.model.checkpoint import load_model
    from funfactory.model.decode import DecodeOptions
    from funfactory.model.hotword import HotwordIndex, ctc_units

    listed = decoding.read_set(sets["hotword-test"], lambda m: m["task"] == "hotword")
    samples = decoding.even(listed, run.plan.hotword_test_utterances)
    model = load_model(folder)
    index = HotwordIndex(vocabulary(listed), ctc_units(model))
    true = [[h["text"] for h in s.meta["hotword"]["true"]] for s in samples]
    no_list = lambda meta: {**meta, "prompt": {**meta["prompt"], "hotwords": []}}  # noqa: E731
    out = {}
    for name, hotwords in (("none", None), ("retrieved", index)):
        options = DecodeOptions(method="llm", hotwords=hotwords,
                                max_new_tokens=run.plan.max_new_tokens)
        decoded = decoding.decode_samples(model, samples, options, prompt=no_list)
        metrics = hotword_metrics([d.meta["text"] for d in decoded],
                                  [d.transcript.text for d in decoded], true, language="en")
        out[name] = {**{k: round(v, 4) if isinstance(v, float) else v
                        for k, v in metrics.summary().items()},
                     "wer": decoding.wer(decoded),
                     "ctc_wer": decoding.wer(decoded, ctc=True),
                     "mean_candidates": round(sum(len(d.transcript.hotwords) for d in decoded)
                                              / max(1, len(decoded)), 2),
                     "examples": [{"reference": d.meta["text"], "hypothesis": d.transcript.text,
                                   "candidates": d.transcript.hotwords[:5]} for d in decoded[:3]]}
    base, treat = out["none"]["hotword_recall"], out["retrieved"]["hotword_recall"]
    return {"experiment": "hotwords", "section": SECTION,
            "metric": "hotword recall (accuracy and WER in the detail)",
            "baseline_name": "no candidates", "treatment_name": "retrieved candidates in the prompt",
            "baseline": base, "treatment": treat,
            "change": f"{100 * (treat - base):+.1f} points",
            "target": "recall higher", "met": treat > base,
            "utterances": {"hotword test": len(samples),
                           "true hotwords": sum(len(t) for t in true),
                           "vocabulary": len(index)},
            "detail": out}
