"""Filling the demo's caches in a background process while its pipelines run.

On a fresh machine the demo's later stages first fill funfactory's cache: the packaged LLMs are
converted from GGUF (Gemma-3-270M for the context stage, SmolLM2-135M for the model), the Whisper
base encoder from CTranslate2, the hotword stage's noise is read from the cached corpus, built
once, and half an hour of TTS speech is synthesised for the model. That is two to three minutes
of work on 2 cores, and none of it depends on what the pipelines produce. So once the corpus
exists `funfactory demo` starts one process that fills those entries while the pipeline stages
run: at nice 10 and on one thread, it takes the CPU the stages leave idle and yields it when
they need both cores.

Every entry is built under its own file lock and published by one rename (`funfactory.cache`),
so a stage that needs an entry before the background has it waits for it, or builds it itself
when the background has not begun it; the results are the same whoever builds them. A
background failure costs only time: it is printed, and the stage that needs the entry builds it.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Callable, Sequence


def demo_cache_jobs(seed: int, scale: str, corpus_texts: list[str]
                    ) -> list[tuple[str, Callable[[], object]]]:
    """The demo's cache entries in the order its stages need them."""
    from functools import partial

    from funfactory.demo_speech import build_speech, plan_speech
    from funfactory.model.whisper import cached_whisper_encoder
    from funfactory.synth.corpus import default_corpus
    from funfactory.synth.llm.transformers_backend import packaged_model_dir

    return [("Gemma-3-270M from GGUF", partial(packaged_model_dir, "gemma3-270m")),
            ("the cached corpus (the hotword stage's noise)", partial(default_corpus, scale, seed)),
            ("demo speech (TTS)", partial(build_speech, plan_speech(seed, corpus_texts))),
            ("SmolLM2-135M from GGUF", partial(packaged_model_dir, "smollm2-135m-instruct")),
            ("Whisper base encoder", partial(cached_whisper_encoder, "whisper-base"))]


def _fill(make_jobs: Callable[..., Sequence[tuple[str, Callable[[], object]]]], args: tuple,
          failures) -> None:
    os.nice(10)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)
    for name, job in make_jobs(*args):
        try:
            job()
        except Exception:  # reported to the demo, which builds the entry itself when needed
            failures.put((name, traceback.format_exc(limit=3)))


class CacheWarmer:
    """Runs the jobs `make_jobs(*args)` returns, (name, callable) pairs, one after another in a
    background process (spawned, so no thread pool of this process is forked); `finish()` waits
    for it and reports what failed."""

    def __init__(self, make_jobs: Callable[..., Sequence[tuple[str, Callable[[], object]]]],
                 *args):
        context = multiprocessing.get_context("spawn")
        self.failures = context.SimpleQueue()
        self.process = context.Process(target=_fill, args=(make_jobs, args, self.failures),
                                       name="funfactory-cache-warmer", daemon=True)
        self.process.start()

    def finish(self) -> list[tuple[str, str]]:
        """Wait for the background process; the (job, error) pairs that failed, also printed."""
        self.process.join()
        failed = []
        while not self.failures.empty():
            failed.append(self.failures.get())
        if self.process.exitcode != 0 and not failed:
            failed.append(("cache warmer", f"exit code {self.process.exitcode}"))
        for name, error in failed:
            print(f"      background cache fill failed for {name} (the stage builds it): {error}",
                  flush=True)
        return failed
