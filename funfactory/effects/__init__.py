"""`make effects`: the report's data effects in miniature, each as a paired run.

Every pair trains the same model with the same seed and the same number of steps, and differs only
in its data (or, for hotwords, only in the decoding prompt); see docs/effects.md for what each
experiment trains on and what was run here.

- `noise`: noise-robust training (section 5.2, Table 4);
- `noise_only`: noise-only samples (section 5.6);
- `streaming`: streaming-prefix data (section 5.1, Table 3);
- `hotwords`: retrieved hotword candidates in the prompt (section 5.5, Table 6);
- `grpo`: SFT against SFT + GRPO (section 4.4, Table 8).

`python -m funfactory.effects --out effects-out` runs them (`runner.py`).
"""
