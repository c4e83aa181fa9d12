"""One interface for every LLM backend used by the synthesis steps (Fun-ASR sections 4.3 and 5.4).

Fun-ASR sections 4.3 and 5.4 use an LLM for keyword extraction, context synthesis and
code-switched text. Each backend (transformers, vLLM, an OpenAI-compatible server) implements
`generate_uncached(requests, params)`; callers go through :class:`LLMClient`, which adds the
persistent request cache (`cache.py`) and JSON output mode (parse, then retry with the next seed).

A request is either a plain completion prompt (base models with few-shot prompts) or a list of
chat messages (instruct models). `GenerationParams.seed` fixes sampling; a request may override
it with its own seed so that a batch of samples gets distinct, reproducible draws.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

from funfactory.errors import FunfactoryError


@dataclass(frozen=True)
class GenerationParams:
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 128
    seed: int = 0
    stop: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {**asdict(self), "stop": list(self.stop)}


@dataclass(frozen=True)
class Request:
    """A completion `prompt` or chat `messages` ([{"role", "content"}]), with an optional seed."""

    prompt: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None
    seed: int | None = None

    def __post_init__(self):
        if (self.prompt is None) == (self.messages is None):
            raise FunfactoryError("an LLM request needs exactly one of prompt or messages")

    @classmethod
    def chat(cls, messages: Sequence[dict], seed: int | None = None) -> Request:
        return cls(messages=tuple((m["role"], m["content"]) for m in messages), seed=seed)

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    def message_dicts(self) -> list[dict]:
        return [{"role": role, "content": content} for role, content in self.messages or ()]

    def effective_seed(self, params: GenerationParams) -> int:
        return params.seed if self.seed is None else self.seed

    def as_dict(self) -> dict:
        return {"prompt": self.prompt, "messages": self.message_dicts() if self.is_chat else None,
                "seed": self.seed}


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    cached: bool = False

    def as_dict(self) -> dict:
        return {"text": self.text, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "finish_reason": self.finish_reason}


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """`text` up to (not including) the earliest stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text, False) if cut < 0 else (text[:cut], True)


class LLMBackend:
    """A text generator. Subclasses set `kind` and `model` and implement `generate_uncached`."""

    kind = "abstract"
    model = ""

    def generate_uncached(self, requests: Sequence[Request],
                          params: GenerationParams) -> list[Completion]:
        raise NotImplementedError

    def describe(self) -> dict:
        """What goes into the cache key and the samples' lineage."""
        return {"backend": self.kind, "model": self.model}

    def close(self) -> None:
        """Release the engine (servers, processes); a no-op for in-process models."""


_JSON_START = re.compile(r"[\[{]")


def parse_json_value(text: str) -> Any:
    """The first JSON array or object in `text` (models wrap it in prose or code fences)."""
    decoder = json.JSONDecoder()
    for match in _JSON_START.finditer(text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
            return value
        except json.JSONDecodeError:
            continue
    raise ValueError(f"no JSON array or object in {text[:200]!r}")


@dataclass
class CallStats:
    requests: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    backend_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    json_failures: int = 0
    json_retries: int = 0
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


class LLMClient:
    """A backend behind the request cache: what every synthesis step calls.

    `generate` returns one Completion per request, in order; cached answers come back without a
    backend call (`stats.cache_hits`). `generate_json` parses each answer as JSON (prefixed by
    `json_prefix`, the part of the JSON the prompt already wrote), checks it with `validate`, and
    retries a failed request up to `retries` times with seeds seed+1, seed+2, ... (a greedy
    first attempt is retried at `retry_temperature`: greedy decoding would only repeat itself).
    """

    def __init__(self, backend: LLMBackend, cache=None, batch_size: int = 8):
        self.backend = backend
        self.cache = cache
        self.batch_size = max(1, batch_size)
        self.stats = CallStats()

    @property
    def model(self) -> str:
        return self.backend.model

    def describe(self) -> dict:
        return self.backend.describe()

    def generate(self, requests: Sequence[Request], params: GenerationParams) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        missing: list[int] = []
        keys: list[str | None] = [None] * len(requests)
        self.stats.requests += len(requests)
        for i, request in enumerate(requests):
            if self.cache is not None:
                keys[i] = self.cache.key(self.backend.describe(), request, params)
                hit = self.cache.get(keys[i])
                if hit is not None:
                    results[i] = hit
                    self.stats.cache_hits += 1
                    continue
                self.stats.cache_misses += 1
            missing.append(i)
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start:start + self.batch_size]
            outputs = self.backend.generate_uncached([requests[i] for i in batch], params)
            self.stats.backend_calls += 1
            for i, completion in zip(batch, outputs):
                self.stats.prompt_tokens += completion.prompt_tokens
                self.stats.completion_tokens += completion.completion_tokens
                if self.cache is not None:
                    self.cache.put(keys[i], completion, self.backend.kind, self.backend.model)
                results[i] = completion
        return results

    def generate_json(self, requests: Sequence[Request], params: GenerationParams, *,
                      json_prefix: str = "", retries: int = 2, retry_temperature: float = 0.7,
                      validate: Callable[[Any], Any] | None = None) -> list[Any | None]:
        """Parsed (and validated) JSON per request, or None where every attempt failed."""
        values: list[Any | None] = [None] * len(requests)
        todo = list(range(len(requests)))
        for attempt in range(retries + 1):
            if not todo:
                break
            attempt_params = params
            if attempt:
                self.stats.json_retries += len(todo)
                attempt_params = replace(params, temperature=max(params.temperature,
                                                                 retry_temperature))
            attempt_requests = [replace(requests[i], seed=requests[i].effective_seed(params) + attempt)
                                if attempt else requests[i] for i in todo]
            completions = self.generate(attempt_requests, attempt_params)
            failed = []
            for i, completion in zip(todo, completions):
                try:
                    value = parse_json_value(json_prefix + completion.text)
                    values[i] = validate(value) if validate else value
                except (ValueError, TypeError):
                    failed.append(i)
            todo = failed
        self.stats.json_failures += len(todo)
        return values

    def close(self) -> None:
        self.backend.close()
        if self.cache is not None:
            self.cache.close()
