"""The demo's TTS speech: synthesised by one process per core, the same audio as in order."""

import numpy as np

from funfactory import demo_speech


def test_parallel_synthesis_equals_speaking_in_order(monkeypatch):
    texts = ["The meeting moved to Thursday.", "Seabirds follow the ferry.",
             "Our flight was delayed by fog."]
    jobs = {voice: [("train", f"{voice}-{i}", t, 7 + i) for i, t in enumerate(texts)]
            for voice in ("hibari-en", "espeak-en")}
    monkeypatch.setattr(demo_speech, "PART_COST", 2)  # parts of two utterances: voices split
    spoken = demo_speech._speak_in_parallel(jobs)
    for voice, items in jobs.items():
        in_order = demo_speech._speak_part(voice, [(t, s) for _, _, t, s in items])
        assert len(spoken[voice]) == len(in_order) == 3
        for a, b in zip(spoken[voice], in_order):
            assert a.dtype == np.float32 and a.size > 8000 and np.array_equal(a, b)
