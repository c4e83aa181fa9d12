"""The effects harness (`make effects`) end to end on a tiny plan: real TTS speech, the real
augment, streaming, hotword and RL pipelines, the real trainer on the `tiny` model size.

The figures of a tiny run mean nothing; what is checked is that each pair really differs only in
its data, that every experiment lands in the table with its utterance counts, and that the README
block is replaced between its markers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from funfactory.effects.plan import PLANS, EffectsRun
from funfactory.effects.report import END, START, update_readme
from funfactory.effects.runner import run_effects
from funfactory.effects.training import config_differences
from funfactory.errors import FunfactoryError


def write_speech(folder, clips):
    from funfactory.shards.schema import new_meta
    from funfactory.shards.writer import ShardWriter

    for name, chosen in (("train", clips[:5]), ("heldout", clips[5:])):
        with ShardWriter(folder / name, name, "train" if name == "train" else "test") as writer:
            for i, (text, audio) in enumerate(chosen):
                key = f"{name}{i:03d}"
                writer.write(new_meta(key=key, text=text, language="en", duration=len(audio) / 16000,
                                      source_id=key, uri="tts://hibari-en", pipeline="test",
                                      version="0", config_sha256=""), audio)
    return folder


@pytest.fixture(scope="module")
def tiny_effects(speech_clips, tmp_path_factory):
    root = tmp_path_factory.mktemp("effects")
    speech = write_speech(root / "speech", speech_clips)
    readme = root / "README.md"
    readme.write_text(f"# top\n\n{START}\nold table\n{END}\n\n## next section\n", encoding="utf-8")
    run = EffectsRun(root / "out", PLANS["tiny"], seed=0)
    rows = run_effects(run, speech, ("noise",), readme)
    return run, rows, readme, speech


def test_pairs_differ_only_in_data(tiny_effects):
    run, rows, *_ = tiny_effects
    assert [r.get("error") for r in rows] == [None]
    noise = config_differences(run, "ctc-clean", "ctc-noisy")
    assert set(noise) == {"data.streams", "data.augment.enabled", "data.augment.options.noise_manifest"}
    assert [s["name"] for s in noise["data.streams"][1]] == ["tts", "noisy"]
    assert config_differences(run, "ctc-clean", "ctc-clean") == {}


def test_every_experiment_reports_its_counts_and_figures(tiny_effects):
    run, *_ = tiny_effects
    table = json.loads(run.path("effects.json").read_text(encoding="utf-8"))
    assert [r["experiment"] for r in table["experiments"]] == ["noise-robust training"]
    assert table["experiments"][0]["utterances"] == {"noisy test": 2, "clean test": 2}
    for row in table["experiments"]:
        assert isinstance(row["baseline"], float) and isinstance(row["treatment"], float)
        assert (run.out / row["png"]).stat().st_size > 1000
    assert "funfactory pipeline augment run" in run.path("commands.sh").read_text(encoding="utf-8")


def test_a_rerun_reuses_finished_work_and_keeps_the_command_list(tiny_effects):
    run, _, readme, speech = tiny_effects
    listed = run.path("commands.sh").read_text(encoding="utf-8")
    again = EffectsRun(run.out, run.plan, seed=run.seed)
    rows = run_effects(again, speech, ("noise",), readme)
    assert [r.get("error") for r in rows] == [None]
    assert again.commands == []
    assert run.path("commands.sh").read_text(encoding="utf-8") == listed


def test_the_readme_block_is_replaced_between_its_markers(tiny_effects, tmp_path):
    readme = tiny_effects[2]
    text = readme.read_text(encoding="utf-8")
    assert "old table" not in text and "| noise-robust training (5.2, Table 4) |" in text
    assert "| grpo | not run |" in text
    assert text.startswith("# top\n") and text.endswith(f"{END}\n\n## next section\n")
    bare = tmp_path / "README.md"
    bare.write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(FunfactoryError, match="effects:start"):
        update_readme(bare, "table")


def test_the_hotword_sets_are_spoken_hotword_sentences_with_their_true_hotwords(tiny_effects):
    from funfactory.effects.data import build_sets
    from funfactory.effects.hotword_speech import read_pool
    from funfactory.shards.reader import ShardReader

    run, _, _, speech = tiny_effects
    sets = build_sets(run, speech, ["hotword-train", "hotword-test"])
    pool = read_pool()
    written = {s.text: s.hotwords for sentences in pool.values() for s in sentences}
    for name, split, voices in (("hotword-train", "train", 2), ("hotword-test", "test", 5)):
        samples = [s for s in ShardReader(sets[name], decode=False) if s.meta["task"] == "hotword"]
        chosen = pool[split][:PLANS["tiny"].hotword_sentences]
        assert sorted(s.meta["raw_text"] for s in samples) == sorted(
            c.text for c in chosen for _ in range(voices))
        for sample in samples:
            true = [h["text"] for h in sample.meta["hotword"]["true"]]
            assert set(written[sample.meta["raw_text"]]) <= set(true)
            assert set(true) <= set(sample.meta["prompt"]["hotwords"])
    assert "hotword-speech" in run.commands[-1] and "--set split=test" in run.commands[-1]


def test_silent_inputs_are_silent_or_faint():
    from funfactory.effects.data import silent_inputs
    from funfactory.shards.reader import ShardReader
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        samples = list(ShardReader(silent_inputs(Path(tmp) / "s", 4, seed=0)))
    assert [s.meta["text"] for s in samples] == [""] * 4
    levels = [float(np.sqrt(np.mean(s.audio ** 2))) for s in samples]
    assert levels[0] == 0.0 and 0 < levels[1] < 10 ** (-45 / 20)


@pytest.mark.slow
def test_noise_only_streaming_hotword_and_grpo_experiments_run_on_the_tiny_plan(tiny_effects):
    from funfactory.shards.reader import ShardReader

    run, _, _, speech = tiny_effects
    rows = run_effects(run, speech, ("noise_only", "streaming", "hotwords", "grpo"))
    assert [r.get("error") for r in rows] == [None, None, None, None]
    noise_only_row, streaming_row, hotword_row, grpo_row = rows
    streams = config_differences(run, "ctc-noisy", "ctc-noisy-noiseonly")
    assert streams.keys() == {"data.streams"}
    assert [s["name"] for s in streams["data.streams"][1]] == ["tts", "noisy", "noise_only"]
    assert noise_only_row["utterances"] == {"noise-only test (test noise)": 2, "silent inputs": 2,
                                            "clean test": 2}
    streams = config_differences(run, "ctc-clean", "ctc-clean-streaming")
    assert streams.keys() == {"data.streams"}
    assert [s["name"] for s in streams["data.streams"][1]] == ["tts", "streaming"]
    assert streaming_row["utterances"]["prefixes decoded"] > streaming_row["utterances"]["test utterances"]
    assert hotword_row["utterances"]["hotword test"] == 2
    assert hotword_row["detail"]["none"]["mean_candidates"] == 0
    assert grpo_row["utterances"]["GRPO steps"] == PLANS["tiny"].grpo_steps
    source = [s.meta for s in ShardReader(run.path("shards", "rl-source"), decode=False)]
    assert grpo_row["utterances"]["RL candidates"] == len(source)
    assert sum(m["task"] == "hotword" for m in source) == PLANS["tiny"].rl_utterances
    assert {m["task"] for m in source} == {"hotword", "noise_only", "asr"}
    selection = grpo_row["detail"]["rl_selection"]
    print("RL job on the tiny plan:", selection)
    kept = [n for n in selection["kept"].values() if n]
    assert len(set(kept)) == 1 and sum(kept) == grpo_row["utterances"]["RL training set"]
