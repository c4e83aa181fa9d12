"""Contextual SFT shards (Fun-ASR section 4.3): `funfactory pipeline context run`."""
