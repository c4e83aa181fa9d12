"""The one config system: dataclass defaults, safe YAML, dotted CLI overrides, clear errors."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from funfactory.config import config_sha256, dump_config, load_config
from funfactory.errors import FunfactoryError


@dataclass
class VadConfig:
    threshold: float = 0.5
    min_seconds: float = 1.0
    max_seconds: float = 30.0


@dataclass
class JobConfig:
    name: str = "label"
    systems: list[str] = field(default_factory=lambda: ["whisper-base", "pocketsphinx"])
    batch_size: int = 8
    resume: bool = True
    cutoff: str | None = None
    vad: VadConfig = field(default_factory=VadConfig)


def test_defaults_yaml_and_overrides_apply_in_order(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("batch_size: 16\nvad:\n  threshold: 0.6\n")
    config = load_config(JobConfig, path, ["vad.max_seconds=20", "resume=false",
                                           "systems=whisper-tiny-en,pocketsphinx"])
    assert config.batch_size == 16 and config.vad.threshold == 0.6
    assert config.vad.max_seconds == 20.0 and config.vad.min_seconds == 1.0
    assert config.resume is False
    assert config.systems == ["whisper-tiny-en", "pocketsphinx"]
    assert isinstance(config.vad, VadConfig)


def test_unknown_keys_and_bad_types_are_named(tmp_path):
    with pytest.raises(FunfactoryError, match=r"unknown key\(s\) \['thresold'\]"):
        load_config(JobConfig, None, ["vad.thresold=0.3"])
    with pytest.raises(FunfactoryError, match="batch_size: expected int"):
        load_config(JobConfig, None, ["batch_size=many"])
    with pytest.raises(FunfactoryError, match="key.sub=value"):
        load_config(JobConfig, None, ["batch_size"])


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned > /tmp/ff-pwned']\n")
    with pytest.raises(FunfactoryError, match="not plain YAML"):
        load_config(JobConfig, path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(FunfactoryError, match="must be a mapping"):
        load_config(JobConfig, path)
    with pytest.raises(FunfactoryError, match="does not exist"):
        load_config(JobConfig, tmp_path / "missing.yaml")


def test_config_hash_is_stable_and_sensitive():
    a, b = load_config(JobConfig), load_config(JobConfig)
    assert config_sha256(a) == config_sha256(b)
    assert config_sha256(a) != config_sha256(load_config(JobConfig, None, ["vad.threshold=0.4"]))
    assert load_config(JobConfig, None, []) == a
    assert "threshold: 0.5" in dump_config(a)


def test_cli_help_lists_the_areas_and_errors_are_clean(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "funfactory.cli", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0
    for area in ("shards", "pipeline", "demo"):
        assert area in out.stdout
    bad = subprocess.run([sys.executable, "-m", "funfactory.cli", "shards", "stats",
                          str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "funfactory: error:" in bad.stderr and "Traceback" not in bad.stderr
