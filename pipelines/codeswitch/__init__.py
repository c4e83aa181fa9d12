"""Code-switched speech shards (Fun-ASR section 5.4): `funfactory pipeline codeswitch run`."""
