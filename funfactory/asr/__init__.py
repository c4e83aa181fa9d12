"""ASR systems behind one small interface, for multi-system pseudo-labelling (Fun-ASR report
section 3.1: "labels from several ASR systems"; section 4.4.3 uses their agreement).

Import :mod:`funfactory.asr.registry` and call ``build_backend(BackendSpec(...))`` or
``default_specs()``; every backend follows :class:`funfactory.asr.base.AsrBackend`.
"""
