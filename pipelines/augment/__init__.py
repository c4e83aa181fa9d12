"""Noise robustness data (Fun-ASR sections 5.2 and 5.6): labelled speech mixed with real noise at a
drawn SNR, noise-only hallucination negatives with empty labels, optional room acoustics.

`funfactory pipeline augment IN OUT` runs it as a Beam job; `training/online_augment.py` applies
the same mixing on the fly in the trainer's loader.
"""
