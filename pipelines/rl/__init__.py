"""RL data (Fun-ASR section 4.4.3): hard cases, long segments, hallucination cases, keyword samples
and regular samples in equal shares, each tagged with its subset (`funfactory pipeline rl`)."""
