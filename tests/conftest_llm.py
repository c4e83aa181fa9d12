"""Fixtures for the synthesis tests: the packaged small LLMs, loaded once per session.

Import the fixtures into a test module (`from tests.conftest_llm import smollm2, gemma3`). Loading
takes seconds once the GGUF has been converted into the funfactory cache (the first conversion
takes 30-80 s), so every test that uses a model is marked slow.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct (chat template) through the transformers backend, one thread."""
    import torch

    from funfactory.synth.llm.transformers_backend import SMOLLM2, TransformersBackend
    torch.set_num_threads(1)
    return TransformersBackend(SMOLLM2, threads=1)


@pytest.fixture(scope="session")
def gemma3():
    """Gemma-3-270M base (few-shot prompts) through the transformers backend, one thread."""
    import torch

    from funfactory.synth.llm.transformers_backend import GEMMA3, TransformersBackend
    torch.set_num_threads(1)
    return TransformersBackend(GEMMA3, threads=1)
