"""Models loaded in several threads at once (Beam's in-memory workers, a Dask worker's threads)
leave the process as they found it."""

from __future__ import annotations

import threading

import torch

from funfactory.model.llm import load_llm
from tests.conftest_model import tiny_llm_dir


def test_models_loaded_in_parallel_threads_leave_later_loads_intact():
    from transformers import PreTrainedModel

    tie_weights, init_weights = PreTrainedModel.tie_weights, PreTrainedModel.init_weights
    normal = torch.nn.init.normal_
    folder = tiny_llm_dir()
    start = threading.Barrier(3)
    errors = []

    def load():
        try:
            start.wait()
            load_llm(folder)
        except BaseException as e:  # reported below
            errors.append(e)

    for _ in range(2):
        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    # transformers patches these while it builds a model; racing threads could leave them patched
    assert PreTrainedModel.tie_weights is tie_weights
    assert PreTrainedModel.init_weights is init_weights
    assert torch.nn.init.normal_ is normal and torch.get_default_dtype() == torch.float32
    llm, _ = load_llm(folder)
    head = llm.get_output_embeddings().weight
    assert not head.is_meta and head.data_ptr() == llm.get_input_embeddings().weight.data_ptr()
