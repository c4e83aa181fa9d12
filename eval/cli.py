"""`funfactory eval run|score|report`: score systems on shard sets and write report tables.

- ``run``: decode a test shard set with a system (``backend:KIND``, ``model:FOLDER``,
  ``streaming:FOLDER@CHUNK_MS``; see :mod:`funfactory.eval.systems`), time it (RTF) and score it;
- ``score``: score a hypothesis file (JSONL ``{"key", "text"}``) against a test shard set;
- ``report``: Markdown/CSV tables (systems as columns) and PNG plots from result files.
"""

from __future__ import annotations

import json
from pathlib import Path


def _test_set_name(args) -> str:
    return args.test_set or Path(str(args.test[0]).rstrip("/")).name


def _summary(record: dict) -> str:
    return json.dumps({k: v for k, v in record.items() if k != "utterances"}, ensure_ascii=False,
                      indent=1)


def _run(args) -> int:
    from funfactory.eval.evaluate import decode_shards, evaluate, reference_records, write_result
    from funfactory.eval.systems import build_system

    system = build_system(args.system)
    hypotheses, decode_s, audio_s = decode_shards(system, args.test, args.batch_size)
    record = evaluate(reference_records(args.test), hypotheses, args.name or system.name,
                      _test_set_name(args),
                      args.condition or system.condition, args.language,
                      rtf=decode_s / audio_s if audio_s else None)
    path = write_result(record, args.out)
    with (Path(args.out) / f"{path.stem}.hyp.jsonl").open("w", encoding="utf-8") as f:
        for key, text in hypotheses.items():
            f.write(json.dumps({"key": key, "text": text}, ensure_ascii=False) + "\n")
    print(_summary(record))
    return 0


def _score(args) -> int:
    from funfactory.eval.evaluate import evaluate, read_hypotheses, reference_records, write_result

    record = evaluate(reference_records(args.test), read_hypotheses(args.hyp), args.system,
                      _test_set_name(args), args.condition or "offline", args.language)
    write_result(record, args.out)
    print(_summary(record))
    return 0


def _report(args) -> int:
    from funfactory.eval.evaluate import read_results, write_report

    for path in write_report(read_results(args.results), args.out):
        print(path)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="score systems on shard sets, write reports (Fun-ASR 6)")
    sub = parser.add_subparsers(dest="eval_command", metavar="STEP", required=True)

    def common(p):
        p.add_argument("--test", required=True, nargs="+", help="test shards (folder, glob, list)")
        p.add_argument("--test-set", help="test set name in tables (default: the folder name)")
        p.add_argument("--condition", help="row label beside the test set (offline, streaming, noisy...)")
        p.add_argument("--language", help="metric language (default: the set's language; "
                                          "the mixed error rate when it has several)")
        p.add_argument("--out", required=True, help="folder for result JSON/CSV")

    run = sub.add_parser("run", help="decode with a system, time it, score it")
    run.add_argument("--system", required=True,
                     help="backend:KIND (whisper-base, pocketsphinx...), model:FOLDER, "
                          "streaming:FOLDER@CHUNK_MS")
    run.add_argument("--name", help="system name in tables (default: derived from --system)")
    run.add_argument("--batch-size", type=int, default=8)
    common(run)
    run.set_defaults(func=_run)

    score = sub.add_parser("score", help="score a hypothesis JSONL against test shards")
    score.add_argument("--hyp", required=True, help='JSONL lines {"key": ..., "text": ...}')
    score.add_argument("--system", required=True, help="system name in tables")
    common(score)
    score.set_defaults(func=_score)

    rep = sub.add_parser("report", help="tables (Markdown, CSV) and plots (PNG) from results")
    rep.add_argument("--results", required=True, nargs="+", help="result JSON files or folders")
    rep.add_argument("--out", required=True, help="report folder")
    rep.set_defaults(func=_report)
