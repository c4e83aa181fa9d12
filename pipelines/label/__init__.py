"""The labelling pipeline (Fun-ASR report section 3.1): raw audio -> VAD segments -> labels from
several ASR systems, chosen by agreement -> ITN -> filters -> shards, with every rejected file or
segment in a rejects table. Entry points: :func:`funfactory.pipelines.label.pipeline.run_label`
and ``funfactory pipeline label``.
"""
