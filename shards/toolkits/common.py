"""What every toolkit format shares: the streaming export loop, the import into shards, and the
report both print (counts, hours, what was skipped and why).

An exporter is a context manager with ``add(sample)`` (raise :class:`Skip` to leave a sample out,
with a reason) and ``close() -> [paths written]``. A reader yields :class:`ExternalUtterance`:
an utterance of another toolkit's data, with its audio as a file span or as bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from funfactory import __version__
from funfactory.errors import FunfactoryError
from funfactory.shards.audio import read_span
from funfactory.shards.keys import source_id
from funfactory.shards.reader import ShardReader
from funfactory.shards.schema import KEY_PATTERN, LANGUAGE_PATTERN, SAMPLE_RATE, new_meta
from funfactory.shards.writer import ShardWriter

MAX_EXAMPLES = 20  # skipped samples listed by key in the report (all are counted)


class Skip(Exception):
    """A sample the target format cannot hold: `reason` is a short code, `detail` human text."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class Exporter:
    """Base of the format exporters: ``add`` each sample, ``close`` to finish the files (done
    by the ``with`` block when it ends without an error)."""

    def __init__(self, out_dir: Path):
        self.out = Path(out_dir)
        self.files: list[Path] = []

    @property
    def report_path(self) -> Path:
        return self.out / "export-report.json"

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.files = self.close()

    def add(self, sample) -> None:
        raise NotImplementedError

    def close(self) -> list[Path]:
        raise NotImplementedError


@dataclass
class ExternalUtterance:
    """One utterance of another toolkit's data set.

    Audio is either ``data`` (encoded bytes, e.g. a tar member) or ``path`` read from
    ``offset`` for ``duration`` seconds (``None``: to the end). ``uri`` names it in lineage.
    """

    id: str
    text: str
    uri: str
    path: str | None = None
    data: bytes | None = None
    offset: float = 0.0
    duration: float | None = None
    language: str = ""
    speaker: str = ""
    prompt: dict = field(default_factory=dict)

    def load_audio(self) -> np.ndarray:
        """16 kHz mono float32 samples of the utterance."""
        if self.data is not None:
            audio, rate = sf.read(io.BytesIO(self.data), dtype="float32", always_2d=True)
            start = int(round(self.offset * rate))
            stop = len(audio) if self.duration is None else start + int(round(
                self.duration * rate))
            audio = audio[start:stop].mean(axis=1)
            if rate != SAMPLE_RATE:
                import soxr

                audio = soxr.resample(audio, rate, SAMPLE_RATE)
            return np.asarray(audio, dtype=np.float32)
        if self.path is None:
            raise FileNotFoundError(f"{self.uri}: no local audio (not a file here, or not in "
                                    "its archive)")
        end = self.offset + self.duration if self.duration is not None else \
            sf.info(self.path).duration
        return np.asarray(read_span(self.path, self.offset, end), dtype=np.float32)


@dataclass
class ConversionReport:
    """Counts, hours and skips of one export or import."""

    direction: str  # export | import
    format: str
    source: str
    target: str
    samples: int = 0
    seconds: float = 0.0
    skipped: Counter = field(default_factory=Counter)
    skipped_examples: list = field(default_factory=list)
    files: list = field(default_factory=list)
    elapsed_seconds: float = 0.0

    def add(self, seconds: float) -> None:
        self.samples += 1
        self.seconds += seconds

    def skip(self, key: str | None, reason: str, detail: str) -> None:
        self.skipped[reason] += 1
        if len(self.skipped_examples) < MAX_EXAMPLES:
            self.skipped_examples.append({"key": key, "reason": reason, "detail": detail})

    def as_dict(self) -> dict:
        return {"direction": self.direction, "format": self.format, "source": self.source,
                "target": self.target, "samples": self.samples,
                "hours": round(self.seconds / 3600, 4), "seconds": round(self.seconds, 3),
                "skipped": dict(self.skipped), "skipped_examples": self.skipped_examples,
                "files": [str(f) for f in self.files],
                "elapsed_seconds": round(self.elapsed_seconds, 3)}

    def text(self) -> str:
        lines = [f"{self.direction} {self.format}: {self.samples} samples, "
                 f"{self.seconds / 3600:.3f} h, {sum(self.skipped.values())} skipped "
                 f"({self.elapsed_seconds:.1f} s): {self.source} -> {self.target}"]
        for reason, n in sorted(self.skipped.items()):
            lines.append(f"  skipped {n} x {reason}")
        for example in self.skipped_examples[:5]:
            lines.append(f"    e.g. {example['key']}: {example['detail']}")
        return "\n".join(lines)

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.as_dict(), ensure_ascii=False, indent=2) + "\n",
                        encoding="utf-8")
        return path


class Progress:
    """A line on stderr every `every_seconds`: samples done, audio hours, samples per second."""

    def __init__(self, label: str, every_seconds: float = 5.0, stream=None):
        self.label, self.every = label, every_seconds
        self.stream = stream if stream is not None else sys.stderr
        self.started = self.last = time.monotonic()

    def tick(self, report: ConversionReport) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            rate = report.samples / max(now - self.started, 1e-9)
            print(f"[{self.label}] {report.samples} samples, {report.seconds / 3600:.3f} h, "
                  f"{sum(report.skipped.values())} skipped, {rate:.0f} samples/s",
                  file=self.stream, flush=True)


def export_shards(shards, out_dir: str | Path, fmt: str, *, progress: Progress | None = None,
                  **options) -> ConversionReport:
    """Stream the samples of `shards` (folder, glob, brace pattern or list) into `out_dir` in
    format `fmt`; writes the report (``OUT/export-report.json``; for Shar, whose readers take
    every file of the folder for a field, ``OUT-export-report.json`` beside it) and returns it."""
    from funfactory.shards.toolkits import exporter_class

    started = time.monotonic()
    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()):
        raise FunfactoryError(f"export folder {out} is not empty: files of an earlier export "
                              "would mix with this one; choose a new folder or remove it")
    out.mkdir(parents=True, exist_ok=True)
    reader = ShardReader(shards, decode=False)
    report = ConversionReport("export", fmt, str(shards), str(out))
    with exporter_class(fmt)(out, **options) as exporter:
        for sample in reader:
            try:
                exporter.add(sample)
            except Skip as s:
                report.skip(sample.key, s.reason, s.detail)
            else:
                report.add(float(sample.meta["duration"]))
            if progress is not None:
                progress.tick(report)
    for reason, n in reader.errors.items():
        report.skipped[f"unreadable_{reason}"] += n
    for error in reader.error_log[:MAX_EXAMPLES]:
        report.skipped_examples.append({"key": error.key, "reason": f"unreadable_{error.reason}",
                                        "detail": f"{error.shard}: {error.detail}"})
    report.files = exporter.files
    report.elapsed_seconds = time.monotonic() - started
    report.write(exporter.report_path)
    return report


def sample_key(utterance_id: str, taken: set[str]) -> str:
    """The utterance's own id as our key where it is one (1-200 of [A-Za-z0-9_-]); otherwise its
    characters outside that set become '_' and 8 hex digits of its sha1 keep it unique."""
    if KEY_PATTERN.match(utterance_id) and utterance_id not in taken:
        return utterance_id
    digest = hashlib.sha1(utterance_id.encode("utf-8")).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9_-]", "_", utterance_id)[:180] + "-" + digest


def sample_language(language: str) -> str:
    """A language code our schema takes ('en', 'zh', 'zh-en'), or '' when `language` is none."""
    names = {"english": "en", "chinese": "zh", "mandarin": "zh", "中文": "zh", "英文": "en",
             "日文": "ja"}
    code = names.get(language.strip().lower(), language.strip().lower())
    return code if LANGUAGE_PATTERN.match(code) else ""


def import_utterances(utterances: Iterable[ExternalUtterance], out_dir: str | Path, fmt: str,
                      source: str, dataset: str, split: str = "train", *,
                      max_count: int = 1000, progress: Progress | None = None
                      ) -> ConversionReport:
    """Write another toolkit's utterances into our shards (16 kHz mono FLAC + schema-v1 JSON).

    An utterance keeps its id as key (:func:`sample_key`), its text as the label (task ``asr``;
    ``hotword`` or ``context`` when it carries that prompt; ``unlabelled`` without text) and its
    id and format in ``toolkit``. One whose audio is missing or unreadable is skipped with its
    reason; the report is written to ``OUT/import-report.json``.
    """
    started = time.monotonic()
    out = Path(out_dir)
    report = ConversionReport("import", fmt, str(source), str(out))
    taken: set[str] = set()
    with ShardWriter(out, dataset, split, max_count=max_count) as writer:
        for utt in utterances:
            try:
                audio = utt.load_audio()
            except (FileNotFoundError, sf.LibsndfileError, RuntimeError, ValueError,
                    TypeError) as e:
                report.skip(utt.id, "unreadable_audio", f"{utt.uri}: {e}")
                continue
            if audio.size == 0:
                report.skip(utt.id, "no_audio", f"{utt.uri}: zero samples at offset "
                                                f"{utt.offset}")
                continue
            key = sample_key(utt.id, taken)
            taken.add(key)
            prompt = {"context": list(utt.prompt.get("context") or []),
                      "hotwords": list(utt.prompt.get("hotwords") or []),
                      "previous_text": utt.prompt.get("previous_text")}
            task = ("hotword" if prompt["hotwords"] else "context" if prompt["context"]
                    else "asr") if utt.text.strip() else "unlabelled"
            meta = new_meta(
                key=key, text=utt.text, language=sample_language(utt.language),
                duration=len(audio) / SAMPLE_RATE, task=task, source_id=source_id(utt.uri),
                uri=utt.uri, offset=utt.offset, pipeline=f"{fmt}-import", version=__version__,
                config_sha256="", prompt=prompt,
                toolkit={"format": fmt, "id": utt.id, "speaker": utt.speaker or None})
            writer.write(meta, audio)
            report.add(len(audio) / SAMPLE_RATE)
            if progress is not None:
                progress.tick(report)
    report.files = writer.shards
    report.elapsed_seconds = time.monotonic() - started
    report.write(out / "import-report.json")
    return report


def json_lines(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, parsed JSON) of each non-blank line; a line that is not JSON raises with
    its place."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as e:
                raise FunfactoryError(f"{path}:{n}: not a JSON line ({e})") from None


def require_file(path: Path, what: str, fix: str) -> Path:
    if not path.is_file():
        raise FunfactoryError(f"{path}: no {what} there; {fix}")
    return path


def flac_frames(sample) -> tuple[int, int]:
    """(frames, sample rate) of a shard sample's FLAC; :class:`Skip` when it does not decode."""
    try:
        info = sf.info(io.BytesIO(sample.flac))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise Skip("unreadable_audio", f"{sample.shard}: FLAC does not decode ({e})") from None
    return info.frames, info.samplerate


def int16_wav(flac: bytes) -> bytes:
    """The FLAC member's samples, unchanged, as a 16-bit PCM WAV file (check it decodes with
    :func:`flac_frames` first)."""
    audio, rate = sf.read(io.BytesIO(flac), dtype="int16", always_2d=False)
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()
