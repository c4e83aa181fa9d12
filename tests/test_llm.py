"""LLM plumbing without a model: the request cache, JSON parsing, stop strings,
prompt templates, the HTTP client's retries and rate limit."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from funfactory.errors import FunfactoryError
from funfactory.synth.llm import Completion, GenerationParams, Request, RequestCache, parse_json_value
from funfactory.synth.llm.base import cut_at_stop
from funfactory.synth.llm.cache import request_key
from funfactory.synth.llm.openai_backend import OpenAIBackend, RateLimiter
from funfactory.synth.llm.prompts import PROMPTS, get_prompt
from funfactory.synth.llm.server import BadRequest, params_from_body, request_from_body

BACKEND = {"backend": "transformers", "model": "m", "weights": "abc"}


def test_cache_key_depends_on_every_input():
    request = Request(prompt="Keywords:")
    params = GenerationParams(max_tokens=8)
    base = request_key(BACKEND, request, params)
    assert base == request_key(dict(BACKEND), Request(prompt="Keywords:"), GenerationParams(max_tokens=8))
    variants = [
        request_key({**BACKEND, "model": "other"}, request, params),
        request_key({**BACKEND, "weights": "def"}, request, params),
        request_key(BACKEND, Request(prompt="Keywords: "), params),
        request_key(BACKEND, Request.chat([{"role": "user", "content": "Keywords:"}]), params),
        request_key(BACKEND, request, GenerationParams(max_tokens=9)),
        request_key(BACKEND, request, GenerationParams(max_tokens=8, temperature=0.5)),
        request_key(BACKEND, request, GenerationParams(max_tokens=8, stop=("\n",))),
        request_key(BACKEND, Request(prompt="Keywords:", seed=5), params),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_cache_persists_across_processes_and_counts(tmp_path):
    path = tmp_path / "requests.sqlite"
    cache = RequestCache(path)
    key = cache.key(BACKEND, Request(prompt="a"), GenerationParams())
    assert cache.get(key) is None
    cache.put(key, Completion("answer", 3, 1, "stop"), "transformers", "m")
    cache.close()
    reopened = RequestCache(path)
    hit = reopened.get(key)
    assert hit.text == "answer" and hit.cached and hit.completion_tokens == 1
    assert reopened.get("0" * 64) is None
    assert (reopened.hits, reopened.misses, len(reopened)) == (1, 1, 1)


def test_parse_json_value_finds_the_answer_in_prose():
    assert parse_json_value('Sure! ```json\n["Alice", "March"]\n``` done') == ["Alice", "March"]
    assert parse_json_value('["a", "b"]\n\nTranscript: ["c"]') == ["a", "b"]
    assert parse_json_value('{"keywords": ["x"]}') == {"keywords": ["x"]}
    assert parse_json_value('[broken, ["ok"]') == ["ok"]
    with pytest.raises(ValueError):
        parse_json_value("no json here")


def test_cut_at_stop_takes_the_earliest_stop():
    assert cut_at_stop('a", "b"]\nTranscript: x', ["\n"]) == ('a", "b"]', True)
    assert cut_at_stop("one two three", ["three", "two"]) == ("one ", True)
    assert cut_at_stop("no stop", ["\n"]) == ("no stop", False)


def test_every_prompt_template_renders_and_is_versioned():
    for name, template in PROMPTS.items():
        assert template.version and template.lineage()["prompt"] == name
    keywords = get_prompt("keywords", "fewshot").render("请在周五之前上传PyTorch模型。")
    assert keywords.prompt.endswith('Transcript: 请在周五之前上传PyTorch模型。\nKeywords: ["')
    chat = get_prompt("context", "chat").render("hello Alice", ["Alice"], 3)
    assert chat.is_chat and '["Alice"]' in chat.messages[-1][1]
    with pytest.raises(FunfactoryError, match="no prompt template"):
        get_prompt("keywords", "poetry")


def test_server_request_parsing_refuses_bad_bodies():
    assert request_from_body("/v1/completions", {"prompt": "hi"}).prompt == "hi"
    chat = request_from_body("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})
    assert chat.message_dicts() == [{"role": "user", "content": "x"}]
    params = params_from_body({"max_tokens": 5, "temperature": 0, "stop": "\n", "seed": 3})
    assert (params.max_tokens, params.temperature, params.stop, params.seed) == (5, 0.0, ("\n",), 3)
    for path, body in [("/v1/completions", {"prompt": ["a", "b"]}),
                       ("/v1/chat/completions", {"messages": "hi"})]:
        with pytest.raises(BadRequest):
            request_from_body(path, body)
    with pytest.raises(BadRequest):
        params_from_body({"max_tokens": "many"})


class _Overloaded(BaseHTTPRequestHandler):
    """A real HTTP server that answers every request with 503 and counts them (a planted fault)."""

    hits = 0

    def do_POST(self):
        type(self).hits += 1
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(503)
        self.send_header("Retry-After", "0")
        self.end_headers()

    def log_message(self, *args):
        return


def test_http_client_retries_then_names_the_failure():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Overloaded)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        backend = OpenAIBackend(url, "m", max_retries=2, backoff=0.01, timeout=5)
        with pytest.raises(FunfactoryError, match="after 3 attempt.*HTTP 503"):
            backend.generate_uncached([Request(prompt="x")], GenerationParams())
        assert _Overloaded.hits == 3 and backend.retries_done == 2
    finally:
        server.shutdown()
        server.server_close()


def test_http_client_refuses_a_non_http_url():
    with pytest.raises(FunfactoryError, match="http"):
        OpenAIBackend("file:///etc/passwd", "m")


def test_rate_limiter_spaces_requests():
    limiter = RateLimiter(per_second=50)
    started = time.monotonic()
    for _ in range(6):
        limiter.acquire()
    assert time.monotonic() - started >= 5 / 50 * 0.9
