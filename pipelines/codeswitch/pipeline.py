"""The code-switched speech Beam job (Fun-ASR section 5.4; steps in `funfactory.synth.codeswitch`).

    term draws (driver, seeded) in units of `unit_size`
      -> per unit: LLM sentences (checked), the template-slot generator for draws the LLM
         failed (or for all, when the LLM is off), TTS in a voice plan drawn per sample
      -> WriteUnits -> shards + run report with the LLM's yield and the generators' shares.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import apache_beam as beam

from funfactory import __version__
from funfactory.eval.textnorm import normalize_label
from funfactory.shards.schema import new_meta
from funfactory.synth import codeswitch as cs
from funfactory.synth.contextual import stable_seed
from funfactory.synth.llm import LLMConfig

PIPELINE = "codeswitch"


@dataclass
class CodeSwitchConfig:
    samples: int = 16
    unit_size: int = 8
    term_pool: str = ""  # "" = the shipped pool; a folder of DOMAIN.txt or a DOMAIN<TAB>term file
    templates: str = ""  # "" = the shipped templates
    domains: list[str] = field(default_factory=list)  # [] = every domain of the pool
    generators: list[str] = field(default_factory=lambda: ["llm", "template-slot"])
    llm: LLMConfig = field(default_factory=LLMConfig)
    llm_temperature: float = 0.7
    llm_max_tokens: int = 48
    voice_plans: list[str] = field(default_factory=lambda: list(cs.DEFAULT_VOICE_PLANS))
    seed: int = 0
    dataset: str = "codeswitch"
    split: str = "train"
    max_count: int = 1000


class CodeSwitchUnit(beam.DoFn):
    """(unit id, [TermDraw]) -> samples, rejects and the unit summary."""

    def __init__(self, config: CodeSwitchConfig, config_sha256: str):
        self.config, self.sha = config, config_sha256

    def setup(self):
        from funfactory.synth.llm import build_llm, prompt_style

        config = self.config
        self.llm_writer = None
        if cs.GENERATOR_LLM in config.generators:
            llm = build_llm(config.llm)
            self.llm_writer = cs.LLMSentenceWriter(llm, prompt_style(config.llm, llm),
                                                   config.llm_temperature, config.llm_max_tokens)
        self.template_writer = (cs.TemplateSentenceWriter(cs.load_templates(config.templates or None))
                                if cs.GENERATOR_TEMPLATE in config.generators else None)

    def process(self, element):
        from funfactory.pipelines.common.rejects import reject_row

        unit, draws = element
        yields: Counter = Counter()
        stage: Counter = Counter()
        started = time.perf_counter()
        chosen: dict[str, cs.SentenceResult] = {}
        llm_results: dict[str, cs.SentenceResult] = {}
        if self.llm_writer is not None:
            stats = self.llm_writer.llm.stats
            before = (stats.requests, stats.cache_hits, stats.backend_calls)
            for result in self.llm_writer.write(draws):
                llm_results[result.draw.key] = result
                yields["llm_proposed"] += 1
                if result.sentence:
                    yields["llm_kept"] += 1
                    chosen[result.draw.key] = result
                else:
                    yields[f"llm_rejected/{result.reason}"] += 1
            yields["llm_requests"] += stats.requests - before[0]
            yields["llm_cache_hits"] += stats.cache_hits - before[1]
            yields["llm_backend_calls"] += stats.backend_calls - before[2]
        stage["text"] += time.perf_counter() - started
        if self.template_writer is not None:
            for result in self.template_writer.write([d for d in draws if d.key not in chosen]):
                if result.sentence:
                    chosen[result.draw.key] = result
                    yields["template_used"] += 1
                else:
                    yields[f"template_rejected/{result.reason}"] += 1
        for draw in draws:
            result = chosen.get(draw.key)
            if result is None:
                reason = llm_results[draw.key].reason if draw.key in llm_results else "no_generator"
                yield unit, "reject", reject_row(unit=unit, key=draw.key, stage="text",
                                                 reason=reason or "rejected",
                                                 detail=f"term {draw.term!r}", uri=f"term:{draw.term}")
                continue
            plans = self.config.voice_plans
            plan = plans[stable_seed(draw.key, "voice", self.config.seed) % len(plans)]
            tts_started = time.perf_counter()
            audio = cs.synthesize_codeswitch(result.sentence, plan, seed=draw.seed)
            stage["tts"] += time.perf_counter() - tts_started
            llm_attempt = llm_results.get(draw.key)
            meta = new_meta(
                key=draw.key, text=normalize_label(result.sentence, "zh-en"),
                raw_text=result.sentence, language="zh-en", duration=audio.size / 16000,
                task="codeswitch", source_id=f"cs-{self.config.seed}", uri=f"synth://codeswitch/{draw.key}",
                pipeline=PIPELINE, version=__version__, config_sha256=self.sha,
                codeswitch={"term": draw.term, "domain": draw.domain, "voice_plan": plan,
                            "generator": result.generator,
                            "llm_attempt": None if llm_attempt is None else {
                                "text": llm_attempt.raw[:200], "rejected": llm_attempt.reason}},
                synth={"generator": result.generator, "seed": draw.seed, "voice_plan": plan,
                       "llm": self.llm_writer.lineage() if (self.llm_writer and
                                                            result.generator == cs.GENERATOR_LLM)
                       else None,
                       "templates": self.template_writer.lineage()
                       if result.generator == cs.GENERATOR_TEMPLATE else None})
            meta["prompt"]["hotwords"] = []
            meta["lineage"]["generator"] = result.generator
            yields["samples"] += 1
            yields[f"samples/{result.generator}"] += 1
            yields[f"voice/{plan}"] += 1
            yield unit, "sample", (meta, audio)
        yield unit, "unit", {"uri": f"synth://codeswitch/{unit}", "seconds_in": 0.0,
                             "segments": len(draws), "yields": dict(yields),
                             "stage_seconds": dict(stage)}


def summarize(yields: dict) -> dict:
    from funfactory.pipelines.synthesis_job import share
    return {"yield": {
        "llm_kept_share": share(yields.get("llm_kept", 0), yields.get("llm_proposed", 0)),
        "template_share_of_samples": share(yields.get("samples/template-slot", 0),
                                           yields.get("samples", 0)),
        "llm_cache_hit_share": share(yields.get("llm_cache_hits", 0), yields.get("llm_requests", 0)),
    }}


def run_codeswitch(out_dir: str | Path, config: CodeSwitchConfig, options=None,
                   restart: bool = False) -> dict:
    from funfactory.config import config_sha256
    from funfactory.pipelines.common.executor import pending_inputs
    from funfactory.pipelines.synthesis_job import run_units_job

    pool = cs.load_term_pool(config.term_pool or None)
    draws = cs.sample_terms(pool, config.samples, config.seed, config.domains or None)
    size = max(1, config.unit_size)
    units = {f"cs{config.seed:04d}-u{i // size:05d}": draws[i:i + size]
             for i in range(0, len(draws), size)}
    sha = config_sha256(dataclasses.asdict(config))

    return run_units_job(PIPELINE, out_dir, sha, list(units), CodeSwitchUnit(config, sha),
                         pending_inputs(units), dataset=config.dataset,
                         split=config.split, options=options, restart=restart,
                         max_count=config.max_count, summarize=summarize)
