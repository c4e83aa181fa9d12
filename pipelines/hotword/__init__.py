"""Hotword shards (Fun-ASR section 5.5): `funfactory pipeline hotword run`."""
