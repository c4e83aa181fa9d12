"""Versioned prompt templates with worked examples, for the synthesis steps of sections 4.3 and 5.4.

Each task has two styles:

- ``fewshot``: a plain completion prompt of worked examples ending where the answer starts (base
  models: Gemma-3-270M extracts keywords well this way, measured here). The prompt already opens the
  JSON answer, so the model continues it; `json_prefix` is that opening and `stop` ends the answer
  at the line break.
- ``chat``: system + user messages asking for JSON (instruct models: SmolLM2, Qwen3 in production).

A template's `version` goes into every sample's lineage with its name; change the version whenever
the text changes, so the request cache and the lineage both tell old output from new.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from funfactory.errors import FunfactoryError
from funfactory.synth.llm.base import Request

STYLES = ("fewshot", "chat")


@dataclass(frozen=True)
class PromptTemplate:
    task: str
    style: str
    version: str
    render: Callable[..., Request]
    json_prefix: str = ""
    stop: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.task}-{self.style}"

    def lineage(self) -> dict:
        return {"prompt": self.name, "prompt_version": self.version}


def _list(values) -> str:
    return json.dumps(list(values), ensure_ascii=False)


# Keyword extraction (section 4.3 step 1): names, organisations, terms, times, copied verbatim.
KEYWORD_EXAMPLES = [
    ("Alice from Finance said the stripe billing integration goes live in March.",
     ["Alice", "Finance", "stripe", "billing", "integration", "March"]),
    ("我们明天下午三点在杭州开会讨论Kubernetes的部署方案。",
     ["明天下午三点", "杭州", "Kubernetes", "部署方案"]),
    ("The quarterly report from Goldman Sachs shows revenue grew eight percent in Q3.",
     ["quarterly report", "Goldman Sachs", "revenue", "Q3"]),
    ("王老师说期末考试安排在六月二十号，范围是线性代数第三章。",
     ["王老师", "期末考试", "六月二十号", "线性代数"]),
]
_KEYWORD_INSTRUCTION = ("Extract the keywords (names, organisations, technical terms, times and "
                        "dates) from the transcript. Copy each keyword exactly as written in the "
                        "transcript.")


def _keywords_fewshot(transcript: str) -> Request:
    shots = "".join(f"Transcript: {text}\nKeywords: {_list(words)}\n\n"
                    for text, words in KEYWORD_EXAMPLES)
    return Request(prompt=f"{_KEYWORD_INSTRUCTION}\n\n{shots}Transcript: {transcript}\nKeywords: [\"")


def _keywords_chat(transcript: str) -> Request:
    shots = "\n".join(f"Transcript: {text}\nAnswer: {_list(words)}" for text, words in KEYWORD_EXAMPLES[:2])
    return Request.chat([
        {"role": "system", "content": _KEYWORD_INSTRUCTION + " Answer with a JSON list of strings only."},
        {"role": "user", "content": f"Examples:\n{shots}\n\nTranscript: {transcript}\nAnswer:"}])


# Context synthesis (section 4.3 step 2): spoken-style notes a user might give before the audio.
CONTEXT_EXAMPLES = [
    ("Alice from Finance said the stripe billing integration goes live in March.",
     ["Alice", "stripe", "March"],
     ["This is the finance sync where Alice reports on vendors.",
      "We are talking about the stripe payments project today.",
      "The launch plan for March is on the agenda."]),
    ("我们明天下午三点在杭州开会讨论Kubernetes的部署方案。",
     ["杭州", "Kubernetes"],
     ["这次会议在杭州办公室举行。", "大家要聊一下Kubernetes集群的迁移。", "会上会定下杭州团队的分工。"]),
]
_CONTEXT_INSTRUCTION = ("Write short spoken-style context notes that someone might say before "
                        "this recording is played. Each note is one sentence in the language of "
                        "the transcript, mentions at least one keyword exactly as written, and "
                        "does not repeat the transcript.")


def _context_fewshot(transcript: str, keywords: list[str], count: int = 3) -> Request:
    shots = "".join(f"Transcript: {text}\nKeywords: {_list(words)}\nNotes: {_list(notes[:count])}\n\n"
                    for text, words, notes in CONTEXT_EXAMPLES)
    return Request(prompt=f"{_CONTEXT_INSTRUCTION}\n\n{shots}Transcript: {transcript}\n"
                          f"Keywords: {_list(keywords)}\nNotes: [\"")


def _context_chat(transcript: str, keywords: list[str], count: int = 3) -> Request:
    return Request.chat([
        {"role": "system", "content": _CONTEXT_INSTRUCTION
         + f" Answer with a JSON list of {count} strings only."},
        {"role": "user", "content": f"Transcript: {transcript}\nKeywords: {_list(keywords)}\nNotes:"}])


# The no-keyword fallback: notes about the topic only, kept without the keyword filter.
_TOPIC_INSTRUCTION = ("Write short spoken-style notes about the topic of this recording, one "
                      "sentence each, in the language of the transcript, without repeating it.")
TOPIC_EXAMPLES = [
    ("Okay so let's get started, we have a lot to cover today.",
     ["This is the weekly team meeting.", "We usually go over everyone's updates first."]),
    ("好的，那我们就开始吧，今天要讲的内容比较多。", ["这是每周一次的例会。", "今天会先听大家的进展汇报。"]),
]


def _topic_fewshot(transcript: str, count: int = 2) -> Request:
    shots = "".join(f"Transcript: {text}\nNotes: {_list(notes[:count])}\n\n" for text, notes in TOPIC_EXAMPLES)
    return Request(prompt=f"{_TOPIC_INSTRUCTION}\n\n{shots}Transcript: {transcript}\nNotes: [\"")


def _topic_chat(transcript: str, count: int = 2) -> Request:
    return Request.chat([
        {"role": "system", "content": _TOPIC_INSTRUCTION + f" Answer with a JSON list of {count} strings only."},
        {"role": "user", "content": f"Transcript: {transcript}\nNotes:"}])


# Code-switched text (section 5.4): a Chinese sentence around an English term kept in English.
CODESWITCH_EXAMPLES = [
    ("technology", "Kubernetes", "我们下周要把服务迁移到Kubernetes集群上。"),
    ("finance", "IPO", "这家公司计划明年在香港IPO，估值大概一百亿。"),
    ("education", "deadline", "这个作业的deadline是周五晚上十二点。"),
    ("sports", "MVP", "他今年拿到了总决赛的MVP，表现非常稳定。"),
]
_CODESWITCH_INSTRUCTION = ("Write one natural spoken Chinese sentence that uses the English term. "
                           "Keep the term in English exactly as written; do not translate it.")


def _codeswitch_fewshot(term: str, domain: str) -> Request:
    shots = "".join(f"Domain: {d}\nTerm: {t}\nSentence: {s}\n\n" for d, t, s in CODESWITCH_EXAMPLES)
    return Request(prompt=f"{_CODESWITCH_INSTRUCTION}\n\n{shots}Domain: {domain}\nTerm: {term}\nSentence:")


def _codeswitch_chat(term: str, domain: str) -> Request:
    shots = "\n".join(f"Term: {t}\nSentence: {s}" for _, t, s in CODESWITCH_EXAMPLES[:2])
    return Request.chat([
        {"role": "system", "content": _CODESWITCH_INSTRUCTION + " Answer with the sentence only."},
        {"role": "user", "content": f"{shots}\n\nDomain: {domain}\nTerm: {term}\nSentence:"}])


PROMPTS: dict[str, PromptTemplate] = {t.name: t for t in [
    PromptTemplate("keywords", "fewshot", "1", _keywords_fewshot, json_prefix='["', stop=("\n",)),
    PromptTemplate("keywords", "chat", "1", _keywords_chat),
    PromptTemplate("context", "fewshot", "1", _context_fewshot, json_prefix='["', stop=("\n",)),
    PromptTemplate("context", "chat", "1", _context_chat),
    PromptTemplate("topic", "fewshot", "1", _topic_fewshot, json_prefix='["', stop=("\n",)),
    PromptTemplate("topic", "chat", "1", _topic_chat),
    PromptTemplate("codeswitch", "fewshot", "1", _codeswitch_fewshot, stop=("\n",)),
    PromptTemplate("codeswitch", "chat", "1", _codeswitch_chat, stop=("\n",)),
]}


def get_prompt(task: str, style: str) -> PromptTemplate:
    name = f"{task}-{style}"
    if name not in PROMPTS:
        raise FunfactoryError(f"no prompt template {name!r}; available: {', '.join(sorted(PROMPTS))}")
    return PROMPTS[name]
