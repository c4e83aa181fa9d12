"""The contextual SFT data Beam job (Fun-ASR section 4.3; steps in `funfactory.synth.contextual`).

    recordings -> segments (driver; previous-segment transcript as prompt)
      -> batches of llm.batch_size (driver), reshuffled
      -> SynthesizeContext (keywords, LLM pieces + keyword filter, retrieval)
      -> pool of every segment's relevant pieces and transcript (side input)
      -> per unit: AssembleUnit (five irrelevant pieces from other samples, audio cut, sample JSON)
      -> WriteUnits -> shards + run report with the yields of each step.

Stage one runs for every unit on each run, finished or not: its LLM answers come from the request
cache after the first run, and the irrelevant-piece pool is then the same on a resumed run as on
an uninterrupted one. Only pending units are assembled and written.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from pathlib import Path

import apache_beam as beam

from funfactory import __version__
from funfactory.eval.textnorm import detect_language, normalize_label
from funfactory.shards.keys import segment_key
from funfactory.shards.schema import new_meta
from funfactory.synth import contextual as cx
from funfactory.synth.corpus import LANGUAGES, load_sentences

PIPELINE = "context"
MIN_SEGMENT_S = 0.3


def segment_records(recordings: list[dict], config) -> list[dict]:
    records = []
    for rec in recordings:
        segments = cx.segment_recording(rec["utterances"], rec["language"], config.max_segment_s,
                                        config.max_recording_s)
        for seg in segments:
            records.append({"unit": rec["unit"], "key": segment_key(rec["source_id"], seg.index, "ctx"),
                            "index": seg.index, "window": seg.window, "start": seg.start,
                            "end": min(seg.end, rec["duration"]), "text": seg.text,
                            "previous_text": seg.previous_text, "language": rec["language"]})
    return records


def retrieval_texts(recordings: list[dict]) -> list[tuple[str, str]]:
    """The retrieval pool: every input transcript (origin: its unit) and the shipped sentences."""
    texts = [(rec["unit"], u["text"]) for rec in recordings for u in rec["utterances"]]
    texts += [(f"sentences-{lang}", s) for lang in LANGUAGES for s in load_sentences(lang)]
    return texts


class SynthesizeContext(beam.DoFn):
    """A batch of segment records -> the same records with keywords and relevant pieces. The
    retrieval pool ``(origin, text)`` arrives as a side input (it can be large: never pickled
    with the DoFn); its index is built once per DoFn instance."""

    def __init__(self, config):
        self.config = config

    def setup(self):
        from funfactory.synth.hotwords import HotwordMiner
        from funfactory.synth.llm import build_llm, prompt_style

        config = self.config
        self.llm = None
        if cx.GENERATOR_LLM in config.generators:
            self.llm = build_llm(config.llm)
            style = prompt_style(config.llm, self.llm)
            self.extractor = cx.KeywordExtractor(self.llm, style, config.keyword_max_tokens,
                                                 config.seed)
            self.writer = cx.LLMContextWriter(self.llm, style, config.pieces_per_sample,
                                              config.context_max_tokens,
                                              config.context_temperature, config.seed)
            self.lineage = {**self.llm.describe(), "prompt_style": style,
                            "keywords": self.extractor.template.lineage(),
                            **self.writer.prompt_lineage(),
                            "context_temperature": config.context_temperature}
        else:
            self.lineage = {}
        self.miner = HotwordMiner()
        self.retrieval = None

    def _llm_counters(self) -> Counter:
        s = self.llm.stats
        return Counter({"llm_requests": s.requests, "llm_cache_hits": s.cache_hits,
                        "llm_cache_misses": s.cache_misses, "llm_backend_calls": s.backend_calls,
                        "llm_completion_tokens": s.completion_tokens,
                        "llm_json_failures": s.json_failures})

    def process(self, batch, texts):
        if self.retrieval is None and cx.GENERATOR_RETRIEVAL in self.config.generators:
            self.retrieval = cx.KeywordRetrieval(sorted(texts))
        started = time.perf_counter()
        records = [dict(r) for r in batch]
        texts = [r["text"] for r in records]
        before = self._llm_counters() if self.llm else Counter()
        if self.llm is not None:
            results = self.extractor.extract(texts)
            source = "llm"
        else:
            results = [cx.KeywordResult([h.text for h in self.miner.mine(t)]) for t in texts]
            source = "hotword-miner"
        raw_pieces = (self.writer.write([(r["key"], r["text"], k.keywords)
                                         for r, k in zip(records, results)])
                      if self.llm is not None else [[] for _ in records])
        for i, (record, found, pieces) in enumerate(zip(records, results, raw_pieces)):
            yields: Counter = Counter()
            keywords = found.keywords
            yields["segments"] += 1
            yields["keywords_proposed"] += len(found.keywords) + len(found.dropped)
            yields["keywords_kept"] += len(keywords)
            for drop in found.dropped:
                yields[f"keyword_dropped/{drop['reason']}"] += 1
            generator = cx.GENERATOR_LLM if keywords else cx.GENERATOR_LLM_TOPIC
            kept, dropped = cx.filter_pieces(pieces, keywords, record["text"], generator,
                                             require_keywords=bool(keywords))
            if self.llm is not None:
                yields[f"pieces_proposed/{generator}"] += len(pieces)
                yields[f"pieces_kept/{generator}"] += len(kept)
            for drop in dropped:
                yields[f"piece_dropped/{drop['reason']}"] += 1
            if self.retrieval is not None and keywords:
                seen = {cx.match_form(p.text) for p in kept}
                found_pieces = self.retrieval.retrieve(
                    record["text"], keywords, record["unit"], self.config.pieces_per_sample,
                    cx.stable_seed(record["key"], "retrieve", self.config.seed))
                fresh = [p for p in found_pieces if cx.match_form(p.text) not in seen]
                yields[f"pieces_kept/{cx.GENERATOR_RETRIEVAL}"] += len(fresh)
                kept += fresh
            if not keywords:
                yields["no_keyword_fallback"] += 1
            record.update(keywords=keywords, keywords_dropped=found.dropped,
                          keyword_source=source, relevant=[p.as_dict() for p in kept],
                          pieces_dropped=dropped, yields=dict(yields), llm=self.lineage)
            if i == 0 and self.llm is not None:
                after = self._llm_counters()  # zeros kept: a warm run reports 0 backend calls
                record["yields"].update({name: after[name] - before[name] for name in after})
        beam.metrics.Metrics.counter(PIPELINE, "segments").inc(len(records))
        for record in records:
            record["seconds"] = (time.perf_counter() - started) / len(records)
            yield record


def pool_entries(record: dict) -> list[tuple[str, str]]:
    """What other samples may borrow as irrelevant context: this segment's relevant pieces and
    its transcript."""
    return [(record["unit"], p["text"]) for p in record["relevant"]] + [(record["unit"], record["text"])]


class AssembleUnit(beam.DoFn):
    """(unit, records) -> samples with mixed context, rejects, and the unit's summary; the
    context pool and the recordings (unit -> recording) arrive as side inputs."""

    def __init__(self, config, config_sha256: str):
        self.config, self.sha = config, config_sha256

    def setup(self):
        from funfactory.pipelines.context.inputs import RecordingAudio
        self.audio = RecordingAudio()

    def process(self, element, pool, recordings):
        from funfactory.pipelines.common.rejects import reject_row

        unit, records = element
        rec = recordings[unit]
        pool = sorted(set(pool))
        yields: Counter = Counter()
        synth_seconds = 0.0
        for record in sorted(records, key=lambda r: r["index"]):
            yields.update(record["yields"])
            synth_seconds += record["seconds"]
            if record["end"] - record["start"] < MIN_SEGMENT_S or not record["text"].strip():
                yield unit, "reject", reject_row(unit=unit, key=record["key"], stage="segment",
                                                 reason="too_short_or_empty", uri=rec["uri"],
                                                 offset=record["start"],
                                                 duration=record["end"] - record["start"])
                continue
            relevant = [cx.ContextPiece(**p) for p in record["relevant"]]
            irrelevant = cx.sample_irrelevant(pool, unit, record["keywords"], record["text"],
                                              cx.stable_seed(record["key"], "irrelevant",
                                                             self.config.seed),
                                              self.config.irrelevant_pieces)
            mixed = cx.mix_context(relevant, irrelevant,
                                   cx.stable_seed(record["key"], "mix", self.config.seed))
            audio = self.audio.cut(rec, record["start"], record["end"])
            language = detect_language(record["text"]) or record["language"]
            meta = new_meta(
                key=record["key"], text=normalize_label(record["text"], language),
                raw_text=record["text"], language=language, duration=audio.size / 16000,
                task="context", source_id=rec["source_id"], uri=rec["uri"],
                offset=record["start"], published_at=rec["published_at"], pipeline=PIPELINE,
                version=__version__, config_sha256=self.sha,
                context={"pieces": [p.as_dict() for p in mixed], "keywords": record["keywords"],
                         "keywords_dropped": record["keywords_dropped"],
                         "keyword_source": record["keyword_source"],
                         "fallback": "no_keywords" if not record["keywords"] else None,
                         "relevant": len(relevant), "irrelevant": len(irrelevant)},
                synth={"generators": sorted({p.generator for p in relevant}),
                       "llm": record["llm"], "seed": self.config.seed,
                       "segment": {"index": record["index"], "window": record["window"]}})
            meta["prompt"] = {"context": [p.text for p in mixed], "hotwords": [],
                              "previous_text": record["previous_text"]}
            meta["lineage"]["generators"] = meta["synth"]["generators"]
            yields["samples"] += 1
            yields["samples_with_relevant_context"] += bool(relevant)
            yields["relevant_pieces"] += len(relevant)
            yields["irrelevant_pieces"] += len(irrelevant)
            yields["samples_with_previous_text"] += record["previous_text"] is not None
            yield unit, "sample", (meta, audio)
        yield unit, "unit", {"uri": rec["uri"], "seconds_in": rec["duration"],
                             "segments": len(records), "yields": dict(yields),
                             "stage_seconds": {"synthesize": synth_seconds}}


def summarize(yields: dict) -> dict:
    from funfactory.pipelines.synthesis_job import share
    llm_proposed = yields.get("pieces_proposed/llm", 0) + yields.get("pieces_proposed/llm-topic", 0)
    llm_kept = yields.get("pieces_kept/llm", 0) + yields.get("pieces_kept/llm-topic", 0)
    return {"yield": {
        "keyword_kept_share": share(yields.get("keywords_kept", 0), yields.get("keywords_proposed", 0)),
        "llm_piece_kept_share": share(llm_kept, llm_proposed),
        "samples_with_relevant_context_share": share(yields.get("samples_with_relevant_context", 0),
                                                     yields.get("samples", 0)),
        "no_keyword_fallback_share": share(yields.get("no_keyword_fallback", 0),
                                           yields.get("segments", 0)),
        "llm_cache_hit_share": share(yields.get("llm_cache_hits", 0), yields.get("llm_requests", 0)),
    }}


def run_context(out_dir: str | Path, config, shards: str | None = None, options=None,
                restart: bool = False) -> dict:
    """Contextual SFT shards in `out_dir` from `shards` (or the embedded corpus); the report."""
    from funfactory.config import config_sha256
    from funfactory.pipelines.context.inputs import corpus_recordings, shard_recordings
    from funfactory.pipelines.synthesis_job import run_units_job

    recordings = (shard_recordings(shards) if shards
                  else corpus_recordings(config.corpus_scale, config.corpus_seed))
    if config.only_units:
        recordings = [rec for rec in recordings if rec["unit"] in set(config.only_units)]
    if config.limit_units:
        recordings = recordings[:config.limit_units]
    by_unit = {rec["unit"]: rec for rec in recordings}
    records = segment_records(recordings, config)
    size = max(1, config.llm.batch_size)
    # batches cut here, not by BatchElements: its last batch comes from finish_bundle, whose
    # output the DaskRunner drops; fixed batches are also the same on every runner
    batches = [records[i:i + size] for i in range(0, len(records), size)]
    texts = retrieval_texts(recordings)
    sha = config_sha256(dataclasses.asdict(config) | {"input": shards or "corpus"})

    def build(p, todo):
        wanted = set(todo)
        synthesized = (p | "Segments" >> beam.Create(batches, reshuffle=False)
                       | "Spread" >> beam.Reshuffle()
                       | "Synthesize" >> beam.ParDo(SynthesizeContext(config),
                                                    texts=beam.pvalue.AsList(
                                                        p | "RetrievalPool" >> beam.Create(texts))))
        pool = synthesized | "PoolEntries" >> beam.FlatMap(pool_entries)
        return (synthesized
                | "Pending" >> beam.Filter(lambda r: r["unit"] in wanted)
                | "KeyByUnit" >> beam.Map(lambda r: (r["unit"], r))
                | "GroupByUnit" >> beam.GroupByKey()), (
            beam.pvalue.AsList(pool),
            beam.pvalue.AsDict(p | "Recordings" >> beam.Create(sorted(by_unit.items()))))

    return run_units_job(PIPELINE, out_dir, sha, list(by_unit), AssembleUnit(config, sha),
                         build, dataset=config.dataset,
                         split=config.split, options=options, restart=restart,
                         max_count=config.max_count, summarize=summarize)
