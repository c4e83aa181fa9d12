"""Beam hygiene of the label steps: no step changes its input element in place (a runner may
hand the same element to a retry, or fuse steps and keep references to it). Every step runs on
deep-frozen inputs: dicts and lists that refuse every change, numpy arrays marked read-only;
each input is also compared with a copy taken before the step ran."""

from __future__ import annotations

import numpy as np
import pytest

from funfactory.asr.registry import BackendSpec
from funfactory.pipelines.label.config import (FilterConfig, IngestConfig, ItnConfig,
                                               ReferenceConfig, VadConfig, VoteConfig)
from funfactory.pipelines.label.filters import FilterLabels
from funfactory.pipelines.label.ingest import list_sources
from funfactory.pipelines.label.itn import ApplyItn
from funfactory.pipelines.label.pseudo_label import PseudoLabel
from funfactory.pipelines.label.reference_check import CheckReference
from funfactory.pipelines.label.sink import ToSample
from funfactory.pipelines.label.vad import SegmentSources
from funfactory.pipelines.label.vote import Vote
from funfactory.tests.label_audio import SENTENCES, write_speech_corpus


def _refuse(self, *args, **kwargs):
    raise TypeError(f"a label step changed its input element in place ({type(self).__name__})")


class FrozenDict(dict):
    __setitem__ = __delitem__ = __ior__ = update = pop = popitem = clear = setdefault = _refuse


class FrozenList(list):
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = remove = pop = clear = sort = reverse = _refuse


def freeze(x):
    """A deep copy of ``x`` that refuses every in-place change."""
    if isinstance(x, dict):
        return FrozenDict({k: freeze(v) for k, v in x.items()})
    if isinstance(x, list):
        return FrozenList(freeze(v) for v in x)
    if isinstance(x, tuple):
        return tuple(freeze(v) for v in x)
    if isinstance(x, np.ndarray):
        y = x.copy()
        y.flags.writeable = False
        return y
    return x


def thaw(x):
    """A plain deep copy of ``x`` (the reference the frozen input is compared with)."""
    if isinstance(x, dict):
        return {k: thaw(v) for k, v in x.items()}
    if isinstance(x, list):
        return [thaw(v) for v in x]
    if isinstance(x, tuple):
        return tuple(thaw(v) for v in x)
    return x.copy() if isinstance(x, np.ndarray) else x


def same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    return type(a) is type(b) and a == b


def run_frozen(step, elements) -> list:
    """Every output of ``step`` over ``elements``, each input frozen and checked unchanged."""
    out = []
    for element in elements:
        before, frozen = thaw(element), freeze(element)
        out += list(step.process(frozen) or ())
        assert same(frozen, before), f"{type(step).__name__} changed its input {element[:2]}"
    return out


def of_kind(items, kind):
    return [item for item in items if item[1] == kind]


# hypotheses as the real systems wrote them (Whisper base, Whisper tiny.en, pocketsphinx on the
# calibration set, with their own scores): one the vote keeps, one it rejects
KEPT = {"pocketsphinx": {"text": "if they frown fan of i'm a fan of it to afford the forefront",
                         "language": "en", "log_posterior": -38.4, "score": 0.17},
        "whisper-base": {"text": SENTENCES[1], "language": "en", "avg_logprob": -0.21,
                         "no_speech_prob": 0.01, "compression_ratio": 1.1},
        "whisper-tiny-en": {"text": SENTENCES[1], "language": "en", "avg_logprob": -0.26,
                            "no_speech_prob": 0.01, "compression_ratio": 1.1}}
REJECTED = {"whisper-base": {"text": "the meeting starts at nine", "language": "en",
                             "avg_logprob": -0.9, "no_speech_prob": 0.01,
                             "compression_ratio": 1.0},
            "whisper-tiny-en": {"text": "a heating star that night", "language": "en",
                                "avg_logprob": -1.1, "no_speech_prob": 0.01,
                                "compression_ratio": 1.0},
            "pocketsphinx": {"text": "the eating stars", "language": "en",
                             "log_posterior": -40.0, "score": 0.2}}


def ready(step):
    step.setup()
    return step


def test_no_label_step_changes_its_input_element(tmp_path):
    import torch
    torch.set_num_threads(1)
    manifest = write_speech_corpus(tmp_path / "in", [SENTENCES[:2]])
    [source] = list_sources(manifest, IngestConfig())
    unit = source.id

    segmenter = ready(SegmentSources(VadConfig(), batch_size=8))
    segmented = run_frozen(segmenter, [source.as_dict()])
    batches = of_kind(segmented, "batch")
    assert sum(len(b[2]) for b in batches) == 2 and of_kind(segmented, "unit")

    labelled = run_frozen(ready(PseudoLabel([BackendSpec(kind="whisper-tiny-en")])), batches)
    segments = of_kind(labelled, "segment")
    assert len(segments) == 2 and all(s[2]["labels"]["whisper-tiny-en"]["text"]
                                      for s in segments)
    assert all(s[2]["reference"] for s in segments)

    planted = [(unit, "segment", {**segments[0][2], "reference": None, "labels": labels})
               for labels in (KEPT, REJECTED)]
    voted = run_frozen(ready(Vote(VoteConfig())), planted + segments)
    assert of_kind(voted, "reject") and any(s[2]["label_text"] == SENTENCES[1]
                                            for s in of_kind(voted, "segment"))
    checked = run_frozen(ready(CheckReference(ReferenceConfig())), segments)
    assert len(of_kind(checked, "segment")) == 2, checked

    chosen = of_kind(voted, "segment") + of_kind(checked, "segment")
    normalised = run_frozen(ready(ApplyItn(ItnConfig())), chosen)
    strict = FilterConfig(max_chars_per_second={"en": 1.0})
    dropped = run_frozen(ready(FilterLabels(strict, 30.0)), normalised)
    assert of_kind(dropped, "reject") and not of_kind(dropped, "segment")
    filtered = run_frozen(ready(FilterLabels(FilterConfig(), 30.0)), normalised)
    assert len(of_kind(filtered, "segment")) == len(normalised)
    samples = run_frozen(ready(ToSample("0" * 64)), filtered)
    assert len(of_kind(samples, "sample")) == len(filtered)


def test_the_check_catches_a_step_that_changes_its_input():
    class Tags:
        def process(self, item):
            item[2]["labels"]["chosen"] = "x"
            yield item

    with pytest.raises(TypeError, match="in place"):
        run_frozen(Tags(), [("u", "segment", {"labels": {}})])
