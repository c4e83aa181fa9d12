"""LLM backends behind one interface, a persistent request cache, and versioned prompts (Fun-ASR
sections 4.3 and 5.4 use an LLM to extract keywords and write context and
code-switched text).

    from funfactory.synth.llm import LLMConfig, build_llm, GenerationParams, Request
    llm = build_llm(LLMConfig(backend="transformers", model="gemma3-270m"))
    [answer] = llm.generate([Request(prompt="...")], GenerationParams(max_tokens=32))

Backends: ``transformers`` (a local folder or a packaged model: ``smollm2-135m-instruct``,
``gemma3-270m``), ``openai`` (any OpenAI-compatible server), ``vllm`` (offline engine). The same
config points at Qwen3 in production: ``backend=vllm model=/models/Qwen3-8B``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from funfactory.errors import FunfactoryError
from funfactory.synth.llm.base import (CallStats, Completion, GenerationParams, LLMBackend, LLMClient,
                                       Request, parse_json_value)
from funfactory.synth.llm.cache import RequestCache

BACKENDS = ("transformers", "openai", "vllm")


@dataclass
class LLMConfig:
    backend: str = "transformers"
    model: str = "gemma3-270m"
    prompt_style: str = "auto"  # auto | fewshot | chat; auto: chat when the model has a chat template
    base_url: str = "http://127.0.0.1:8000/v1"  # openai backend
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 120.0
    max_retries: int = 4
    requests_per_second: float = 0.0
    concurrency: int = 4
    threads: int = 0  # transformers: torch threads (0: torch's default)
    batch_size: int = 8
    cache: str = ""  # SQLite file; "" = $FUNFACTORY_CACHE/llm/requests.sqlite; "off" disables


def default_cache_path() -> Path:
    from funfactory.cache import cache_root
    return cache_root() / "llm" / "requests.sqlite"


def build_backend(config: LLMConfig) -> LLMBackend:
    if config.backend == "transformers":
        from funfactory.synth.llm.transformers_backend import TransformersBackend
        return TransformersBackend(config.model, threads=config.threads or None)
    if config.backend == "openai":
        from funfactory.synth.llm.openai_backend import OpenAIBackend
        return OpenAIBackend(config.base_url, config.model, api_key_env=config.api_key_env,
                             timeout=config.timeout_s, max_retries=config.max_retries,
                             requests_per_second=config.requests_per_second,
                             concurrency=config.concurrency)
    if config.backend == "vllm":
        from funfactory.synth.llm.vllm_backend import VLLMBackend
        return VLLMBackend(config.model)
    raise FunfactoryError(f"unknown LLM backend {config.backend!r}; choose one of {BACKENDS}")


def build_llm(config: LLMConfig, backend: LLMBackend | None = None) -> LLMClient:
    """The configured backend (or `backend`, already built) behind the request cache."""
    cache = None
    if config.cache != "off":
        cache = RequestCache(config.cache or default_cache_path())
    return LLMClient(backend or build_backend(config), cache=cache, batch_size=config.batch_size)


def prompt_style(config: LLMConfig, client: LLMClient) -> str:
    """The configured style, or for "auto": chat if the model has a chat template (transformers)
    or is served as a chat model (openai, vllm), else few-shot."""
    if config.prompt_style != "auto":
        return config.prompt_style
    has_template = getattr(client.backend, "has_chat_template", None)
    return "chat" if has_template is None or has_template else "fewshot"


__all__ = ["BACKENDS", "CallStats", "Completion", "GenerationParams", "LLMBackend", "LLMClient",
           "LLMConfig", "Request", "RequestCache", "build_backend", "build_llm", "parse_json_value",
           "prompt_style"]
