"""`funfactory synth llm ...`: prepare, query and serve the synthesis LLMs.

    funfactory synth llm prepare gemma3-270m            # convert the packaged GGUF once
    funfactory synth llm generate --model smollm2-135m-instruct --chat "Name a colour."
    funfactory synth llm serve --model smollm2-135m-instruct --port 8011
    funfactory synth llm cache                          # entries in the request cache

`register_llm(synth_subparsers)` adds the `llm` command under `funfactory synth`.
"""

from __future__ import annotations

import argparse
import json
import sys


def _llm_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="transformers", choices=("transformers", "openai", "vllm"))
    parser.add_argument("--model", default="gemma3-270m",
                        help="packaged model (gemma3-270m, smollm2-135m-instruct), a local folder, "
                             "or the served model name (openai)")
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--cache", default="", help="request cache file ('off' to disable)")
    parser.add_argument("--threads", type=int, default=0)


def _config(args):
    from funfactory.synth.llm import LLMConfig
    return LLMConfig(backend=args.backend, model=args.model, base_url=args.base_url,
                     cache=args.cache, threads=args.threads)


def register_llm(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("llm", help="LLM backends for synthesis: prepare, generate, serve, cache",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="llm_command", metavar="COMMAND", required=True)

    prep = s.add_parser("prepare", help="convert a packaged GGUF model into a cached folder once")
    prep.add_argument("model", choices=("gemma3-270m", "smollm2-135m-instruct"))
    prep.set_defaults(func=_prepare)

    gen = s.add_parser("generate", help="one completion (or chat answer) through the cache")
    _llm_args(gen)
    what = gen.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", help="a completion prompt")
    what.add_argument("--chat", help="one user message")
    gen.add_argument("--max-tokens", type=int, default=64)
    gen.add_argument("--temperature", type=float, default=0.0)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--stop", action="append", default=[])
    gen.set_defaults(func=_generate)

    serve = s.add_parser("serve", help="an OpenAI-compatible server over a local model (127.0.0.1)")
    serve.add_argument("--model", default="smollm2-135m-instruct")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--threads", type=int, default=0)
    serve.set_defaults(func=_serve)

    cache = s.add_parser("cache", help="how many answers the request cache holds")
    cache.add_argument("--cache", default="")
    cache.set_defaults(func=_cache)


def _prepare(args) -> int:
    from funfactory.synth.llm.transformers_backend import packaged_model_dir
    print(packaged_model_dir(args.model))
    return 0


def _generate(args) -> int:
    from funfactory.synth.llm import GenerationParams, Request, build_llm
    client = build_llm(_config(args))
    request = (Request(prompt=args.prompt) if args.prompt is not None
               else Request.chat([{"role": "user", "content": args.chat}]))
    params = GenerationParams(temperature=args.temperature, max_tokens=args.max_tokens,
                              seed=args.seed, stop=tuple(args.stop))
    [answer] = client.generate([request], params)
    print(json.dumps({**answer.as_dict(), "cached": answer.cached, **client.describe()},
                     ensure_ascii=False))
    client.close()
    return 0


def _serve(args) -> int:
    from funfactory.synth.llm.server import LLMServer
    from funfactory.synth.llm.transformers_backend import TransformersBackend
    server = LLMServer(TransformersBackend(args.model, threads=args.threads or None), port=args.port)
    print(f"serving {args.model} at {server.base_url} (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _cache(args) -> int:
    from funfactory.synth.llm import RequestCache, default_cache_path
    path = args.cache or default_cache_path()
    cache = RequestCache(path)
    print(json.dumps({"path": str(path), "entries": len(cache)}))
    cache.close()
    return 0
