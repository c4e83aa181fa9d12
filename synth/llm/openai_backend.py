"""OpenAI-compatible HTTP backend: a vLLM server, DashScope's compatible mode, llama.cpp's server.

Chat requests go to ``{base_url}/chat/completions``, completion prompts to
``{base_url}/completions`` (``base_url`` ends in ``/v1``). Retries with exponential backoff on
connection errors, timeouts, 429 and 5xx (honouring ``Retry-After``); a client-side rate limit
(requests per second) shared by the client's threads; `concurrency` requests in flight at once.
Standard library only (urllib). The API key comes from the argument or the environment variable
named by `api_key_env`, never from a config file.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from funfactory.errors import FunfactoryError
from funfactory.synth.llm.base import Completion, GenerationParams, LLMBackend, Request, cut_at_stop

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class RateLimiter:
    """At most `per_second` acquisitions per second, across threads (0: unlimited)."""

    def __init__(self, per_second: float):
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            time.sleep(wait)


class OpenAIBackend(LLMBackend):
    kind = "openai"

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", timeout: float = 120.0, max_retries: int = 4,
                 backoff: float = 1.0, requests_per_second: float = 0.0, concurrency: int = 4):
        if not base_url.startswith(("http://", "https://")):
            raise FunfactoryError(f"LLM base_url {base_url!r} must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env, "")
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self.limiter = RateLimiter(requests_per_second)
        self.concurrency = max(1, concurrency)
        self.retries_done = 0

    def describe(self) -> dict:
        return {"backend": self.kind, "model": self.model, "base_url": self.base_url}

    def generate_uncached(self, requests: Sequence[Request],
                          params: GenerationParams) -> list[Completion]:
        if self.concurrency == 1 or len(requests) == 1:
            return [self._one(r, params) for r in requests]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda r: self._one(r, params), requests))

    def _one(self, request: Request, params: GenerationParams) -> Completion:
        body = {"model": self.model, "temperature": params.temperature, "top_p": params.top_p,
                "max_tokens": params.max_tokens, "seed": request.effective_seed(params), "n": 1}
        if params.stop:
            body["stop"] = list(params.stop)
        if request.is_chat:
            body["messages"] = request.message_dicts()
            answer = self._post("/chat/completions", body)
            text = answer["choices"][0]["message"].get("content") or ""
        else:
            body["prompt"] = request.prompt
            answer = self._post("/completions", body)
            text = answer["choices"][0].get("text") or ""
        text, _ = cut_at_stop(text, params.stop)
        usage = answer.get("usage") or {}
        return Completion(text=text, prompt_tokens=int(usage.get("prompt_tokens", 0)),
                          completion_tokens=int(usage.get("completion_tokens", 0)),
                          finish_reason=answer["choices"][0].get("finish_reason") or "stop")

    def _post(self, path: str, body: dict) -> dict:
        url = self.base_url + path
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last_error = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.retries_done += 1
            self.limiter.acquire()
            delay = self.backoff * 2 ** attempt
            try:
                req = urllib.request.Request(url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as e:
                detail = e.read()[:500].decode("utf-8", "replace")
                last_error = f"HTTP {e.code}: {detail}"
                if e.code not in RETRY_STATUS:
                    break
                retry_after = e.headers.get("Retry-After") if e.headers else None
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    delay = max(delay, float(retry_after))
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                last_error = f"{type(e).__name__}: {e}"
            except json.JSONDecodeError as e:
                last_error = f"the answer is not JSON ({e})"
            if attempt < self.max_retries:
                time.sleep(delay)
        raise FunfactoryError(f"LLM server {url} failed after {self.max_retries + 1} attempt(s): "
                              f"{last_error}; check the server, base_url and model {self.model!r}")
