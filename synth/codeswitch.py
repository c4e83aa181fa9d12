"""Code-switched Chinese-English speech (Fun-ASR section 5.4).

1. A pool of English terms by domain (technology, education, finance, sports) ships in
   ``synth/data/codeswitch/``; users pass their own (:func:`load_term_pool`).
2. Sentences around sampled terms, from one of two generators, each recorded in the samples'
   lineage:

   - ``llm`` (:class:`LLMSentenceWriter`): the report's method, an LLM writes a Chinese sentence
     that keeps the English term. The small packaged LLMs mostly translate the term away
     (measured here), so most of their output fails step 3; production points it at Qwen3.
   - ``template-slot`` (:class:`TemplateSentenceWriter`): hand-written Chinese sentences per
     domain with one English term slot. Not an LLM: a classic way to make code-switched text
     with controlled terms, which gives the offline default volume.

3. :func:`check_codeswitch`: a sentence is kept only if it mixes a Han run and a Latin run and
   contains its term (in Latin script, exactly).
4. Speech in several voices (:func:`synthesize_codeswitch`): a mixed voice reads the whole
   sentence (Kokoro with Mandarin and English phonemes, espeak-ng ``cmn``), or a spliced plan
   ``ZH_VOICE+EN_VOICE`` reads Han runs with the Mandarin voice and Latin runs with an English
   voice; everything resampled to 16 kHz.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from funfactory.errors import FunfactoryError
from funfactory.eval.runs import has_han, has_latin, split_runs
from funfactory.synth.llm import GenerationParams, LLMClient, Request
from funfactory.synth.llm.prompts import get_prompt

DOMAINS = ("technology", "education", "finance", "sports")
DATA_DIR = Path(__file__).with_name("data") / "codeswitch"
GENERATOR_LLM = "llm"
GENERATOR_TEMPLATE = "template-slot"
MAX_SENTENCE_CHARS = 80
MIN_HAN_CHARS = 4
RUN_GAP_S = 0.06
DEFAULT_VOICE_PLANS = ("kokoro-alpha", "espeak-cmn", "espeak-cmn-f+hibari-en",
                       "espeak-cmn+piper-joe-en")


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def load_term_pool(source: str | Path | None = None) -> dict[str, list[str]]:
    """Terms by domain: the shipped pool, a folder of ``DOMAIN.txt`` files, or one file of
    ``DOMAIN<TAB>term`` lines. Every term must hold a Latin letter and no Han character."""
    pool: dict[str, list[str]] = {}
    path = Path(source) if source else DATA_DIR
    if path.is_dir():
        files = sorted(p for p in path.glob("*.txt") if p.stem != "templates")
        for file in files:
            pool[file.stem] = _lines(file)
    elif path.is_file():
        for number, line in enumerate(_lines(path), 1):
            if "\t" not in line:
                raise FunfactoryError(f"{path}:{number}: expected 'DOMAIN<TAB>term', got {line!r}")
            domain, term = (part.strip() for part in line.split("\t", 1))
            pool.setdefault(domain, []).append(term)
    else:
        raise FunfactoryError(f"term pool {path} does not exist (a folder of DOMAIN.txt files or a "
                              "DOMAIN<TAB>term file)")
    for domain, terms in pool.items():
        bad = [t for t in terms if has_han(t) or not has_latin(t)]
        if bad:
            raise FunfactoryError(f"term pool {path}, domain {domain!r}: {bad[:5]} are not English "
                                  "terms (need Latin letters, no Chinese characters)")
    if not any(pool.values()):
        raise FunfactoryError(f"term pool {path} holds no terms")
    return pool


def load_templates(path: str | Path | None = None) -> dict[str, list[str]]:
    """``DOMAIN|sentence with {term}`` lines -> templates by domain (``any`` fits every domain)."""
    path = Path(path) if path else DATA_DIR / "templates.txt"
    templates: dict[str, list[str]] = {}
    for number, line in enumerate(_lines(path), 1):
        domain, _, template = line.partition("|")
        if template.count("{term}") != 1:
            raise FunfactoryError(f"{path}:{number}: a template needs exactly one {{term}} slot")
        templates.setdefault(domain.strip(), []).append(template.strip())
    return templates


@dataclass(frozen=True)
class TermDraw:
    key: str
    domain: str
    term: str
    seed: int


def sample_terms(pool: dict[str, list[str]], count: int, seed: int,
                 domains: Sequence[str] | None = None) -> list[TermDraw]:
    """`count` (domain, term) draws, domains in turn, terms without replacement per domain round."""
    rng = np.random.default_rng(seed)
    names = [d for d in (domains or sorted(pool)) if pool.get(d)]
    if not names:
        raise FunfactoryError(f"no terms for domains {list(domains or [])}; pool has {sorted(pool)}")
    decks = {d: [] for d in names}
    draws = []
    for i in range(count):
        domain = names[i % len(names)]
        if not decks[domain]:
            decks[domain] = [pool[domain][j] for j in rng.permutation(len(pool[domain]))]
        draws.append(TermDraw(f"cs{seed:04d}-{i:06d}", domain, decks[domain].pop(),
                              int(rng.integers(0, 2**31 - 1))))
    return draws


def term_recovered(term: str, hypothesis: str) -> bool:
    """Did an ASR hypothesis write the term in Latin script? Case and spaces are ignored
    ("cash flow" ~ "Cashflow"), the script is not (a transliteration does not count)."""
    return _squash(term) in _squash(hypothesis)


def _squash(text: str) -> str:
    return re.sub(r"[\s\-]+", "", text).casefold()


def term_in(term: str, sentence: str) -> bool:
    """The term, in Latin script and not glued into a longer Latin word (case-insensitive)."""
    pattern = r"(?<![A-Za-z])" + re.escape(term) + r"(?![A-Za-z])"
    return re.search(pattern, sentence, flags=re.IGNORECASE) is not None


def check_codeswitch(sentence: str, term: str) -> str | None:
    """None if `sentence` is a usable code-switched sentence for `term`, else the reason."""
    if not sentence or "\n" in sentence:
        return "empty_or_multiline"
    if len(sentence) > MAX_SENTENCE_CHARS:
        return "too_long"
    kinds = {run.kind for run in split_runs(sentence)}
    if "han" not in kinds:
        return "no_han_run"
    if "latin" not in kinds:
        return "no_latin_run"
    if not term_in(term, sentence):
        return "term_missing"
    if sum(1 for ch in sentence if has_han(ch)) < MIN_HAN_CHARS:
        return "too_little_chinese"
    return None


def clean_sentence(text: str) -> str:
    """First line of an LLM answer, without quotes or a leaked 'Sentence:' label."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = re.sub(r"^(Sentence|句子)\s*[:：]\s*", "", line).strip()
    return line.strip("\"'“”‘’ ")


@dataclass
class SentenceResult:
    draw: TermDraw
    sentence: str | None
    generator: str
    reason: str | None = None  # why it was rejected
    raw: str = ""


class LLMSentenceWriter:
    generator = GENERATOR_LLM

    def __init__(self, llm: LLMClient, style: str = "fewshot", temperature: float = 0.7,
                 max_tokens: int = 48):
        self.llm = llm
        self.template = get_prompt("codeswitch", style)
        self.temperature, self.max_tokens = temperature, max_tokens

    def lineage(self) -> dict:
        return {"generator": self.generator, **self.llm.describe(), **self.template.lineage()}

    def write(self, draws: Sequence[TermDraw]) -> list[SentenceResult]:
        requests = []
        for draw in draws:
            r = self.template.render(draw.term, draw.domain)
            requests.append(Request(prompt=r.prompt, messages=r.messages, seed=draw.seed))
        params = GenerationParams(temperature=self.temperature, max_tokens=self.max_tokens,
                                  stop=self.template.stop)
        results = []
        for draw, completion in zip(draws, self.llm.generate(requests, params)):
            sentence = clean_sentence(completion.text)
            reason = check_codeswitch(sentence, draw.term)
            results.append(SentenceResult(draw, None if reason else sentence, self.generator,
                                          reason, completion.text))
        return results


class TemplateSentenceWriter:
    generator = GENERATOR_TEMPLATE

    def __init__(self, templates: dict[str, list[str]] | None = None):
        self.templates = templates or load_templates()

    def lineage(self) -> dict:
        return {"generator": self.generator,
                "templates": sum(len(v) for v in self.templates.values())}

    def write(self, draws: Sequence[TermDraw]) -> list[SentenceResult]:
        results = []
        for draw in draws:
            choices = self.templates.get(draw.domain, []) + self.templates.get("any", [])
            if not choices:
                results.append(SentenceResult(draw, None, self.generator, "no_template"))
                continue
            rng = np.random.default_rng(draw.seed)
            sentence = choices[int(rng.integers(len(choices)))].format(term=draw.term)
            reason = check_codeswitch(sentence, draw.term)
            results.append(SentenceResult(draw, None if reason else sentence, self.generator,
                                          reason, sentence))
        return results


def voice_plan(plan: str) -> tuple[str, str | None]:
    """"kokoro-alpha" -> (mixed voice, None); "espeak-cmn+hibari-en" -> (zh voice, en voice)."""
    zh, _, en = plan.partition("+")
    return zh, (en or None)


def synthesize_codeswitch(sentence: str, plan: str, seed: int = 0) -> np.ndarray:
    """16 kHz float32 speech of `sentence` with voice plan `plan` (module docstring, step 4)."""
    from funfactory.synth.tts import get_voice, resample_to_16k

    zh_name, en_name = voice_plan(plan)
    zh_voice = get_voice(zh_name)
    if en_name is None:
        return resample_to_16k(zh_voice.synthesize(sentence, seed=seed), zh_voice.sample_rate)
    en_voice = get_voice(en_name)
    pieces = []
    gap = np.zeros(int(RUN_GAP_S * 16000), np.float32)
    for i, run in enumerate(r for r in split_runs(sentence) if r.kind != "other"):
        voice = en_voice if run.kind == "latin" else zh_voice
        speech = resample_to_16k(voice.synthesize(run.text.strip(), seed=seed + i), voice.sample_rate)
        rms = float(np.sqrt(np.mean(speech.astype(np.float64) ** 2))) if speech.size else 0.0
        if rms > 0:
            speech = speech * np.float32(0.08 / rms)  # the two voices at one loudness
        pieces += [speech, gap]
    if not pieces:
        raise FunfactoryError(f"nothing to speak in {sentence!r}")
    audio = np.concatenate(pieces)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return (audio * np.float32(0.95 / peak) if peak > 0.95 else audio).astype(np.float32)
